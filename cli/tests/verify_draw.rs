//! `fanrush verify-draw` from saved files, as an auditor runs it after the
//! event: it passes on an honest draw and a genuine receipt, and fails,
//! naming what is wrong, on each kind of tampering (two fans swapped, a
//! seed that is not the committed one, a receipt signed by another key, a
//! receipt whose place was edited).

use fanrush::rules::line::draw::{commitment, digest, draw, fan_ref, hex, Reveal};
use fanrush::rules::line::receipt::{Receipt, ReceiptClaims, ReceiptKey, ReceiptKeys};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;

const EVENT: &str = "drop";
const SEED: &str = "a-revealed-seed";

struct Files {
    dir: PathBuf,
}

impl Files {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("fanrush-verify-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self { dir }
    }

    fn write(&self, name: &str, value: &impl serde::Serialize) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, serde_json::to_string(value).unwrap()).unwrap();
        path
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn reveal() -> Reveal {
    let fans: Vec<_> = (0..30).map(|i| fan_ref(SEED.as_bytes(), EVENT, &format!("fan-{i}"))).collect();
    Reveal {
        event_id: EVENT.into(),
        commitment: commitment(SEED),
        seed: SEED.into(),
        digest: digest(&fans),
        fans: draw(SEED.as_bytes(), EVENT, &fans),
    }
}

/// fan-7's receipt, as its admission answered it.
fn receipt(key: &ReceiptKey) -> Receipt {
    let reference = fan_ref(SEED.as_bytes(), EVENT, "fan-7");
    let key_of = fanrush::rules::line::draw::draw_key(SEED.as_bytes(), EVENT, &reveal().digest, &reference);
    key.sign(ReceiptClaims {
        event_id: EVENT.into(),
        fan: hex(&reference),
        position: 4,
        accepted_at: "2026-12-07T10:00:01.000Z".into(),
        draw_key: Some(format!("{key_of:016x}")),
    })
}

/// Runs verify-draw on saved files; its exit status and what it printed.
fn verify(reveal: &Path, keys: &Path, receipt: &Path, committed: &str) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fanrush"))
        .args(["verify-draw", "--event", EVENT, "--commitment", committed, "--fan", "fan-7"])
        .arg("--reveal")
        .arg(reveal)
        .arg("--keys")
        .arg(keys)
        .arg("--receipt")
        .arg(receipt)
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn an_honest_draw_and_receipt_pass_and_every_tampering_fails_by_name() {
    let files = Files::new("all");
    let keys = ReceiptKeys::new(b"fanrush-receipt-key", None);
    let key_file = files.write("keys.json", &json!({ "keys": keys.published() }));
    let honest = files.write("reveal.json", &reveal());
    let genuine = files.write("receipt.json", &receipt(&keys.current));
    let committed = commitment(SEED);

    let (ok, out) = verify(&honest, &key_file, &genuine, &committed);
    assert!(ok, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let index = reveal().row_of(&fan_ref(SEED.as_bytes(), EVENT, "fan-7")).unwrap().index;
    assert_eq!(report["fan"]["index"], json!(index), "{out}");
    assert_eq!(report["receipt"]["drawIndex"], json!(index), "{out}");

    // A published list with two fans swapped: it no longer hashes to the
    // digest; swapped with where they were counted too, the keys fail.
    let mut swapped = reveal();
    (swapped.fans[10].fan, swapped.fans[11].fan) = (swapped.fans[11].fan.clone(), swapped.fans[10].fan.clone());
    let (ok, out) = verify(&files.write("swapped.json", &swapped), &key_file, &genuine, &committed);
    assert!(!ok && out.contains("hash to the digest"), "{out}");
    (swapped.fans[10].counted, swapped.fans[11].counted) = (swapped.fans[11].counted, swapped.fans[10].counted);
    let (ok, out) = verify(&files.write("swapped-counted.json", &swapped), &key_file, &genuine, &committed);
    assert!(!ok && out.contains("row 10") && out.contains("draw key"), "{out}");

    // A draw re-made after the seal: one fan fewer, every key recomputed
    // for the new digest. It checks on its own, but not against the digest
    // the event showed when the draw was sealed.
    let fewer: Vec<_> = (0..29).map(|i| fan_ref(SEED.as_bytes(), EVENT, &format!("fan-{i}"))).collect();
    let remade = Reveal { digest: digest(&fewer), fans: draw(SEED.as_bytes(), EVENT, &fewer), ..reveal() };
    let remade = files.write("remade.json", &remade);
    let out = Command::new(env!("CARGO_BIN_EXE_fanrush"))
        .args(["verify-draw", "--event", EVENT, "--commitment", &committed, "--digest", &reveal().digest])
        .arg("--reveal")
        .arg(&remade)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("not the one sealed before the opening"), "{err}");

    // A seed that does not match the commitment the event published.
    let other = Reveal { seed: "another-seed".into(), commitment: commitment("another-seed"), ..reveal() };
    let (ok, out) = verify(&files.write("other-seed.json", &other), &key_file, &genuine, &committed);
    assert!(!ok && out.contains("does not hash to the commitment"), "{out}");

    // A receipt signed by another key.
    let forged = files.write("forged.json", &receipt(&ReceiptKey::from_secret(b"someone else")));
    let (ok, out) = verify(&honest, &key_file, &forged, &committed);
    assert!(!ok && out.contains("not among the published keys"), "{out}");

    // A receipt whose place was edited.
    let mut edited = receipt(&keys.current);
    edited.claims.position = 1;
    let (ok, out) = verify(&honest, &key_file, &files.write("edited.json", &edited), &committed);
    assert!(!ok && out.contains("signature does not match"), "{out}");
}

/// `--api`: the commitment from `GET /events/{id}`, the reveal page by page
/// from `GET /draws/{id}`, the keys from `GET /receipt-keys`, against a
/// stand-in of the API answering what the real one would (the drill runs
/// the same command on what the real functions published).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_the_api_it_reads_every_page_of_the_draw_and_checks_it() {
    use fanrush::usecases::api::bodies::{DrawPageBody, ReceiptKeysBody};
    let api = fanrush_local::HttpCapture::start().await.unwrap();
    let files = Files::new("api");
    let keys = ReceiptKeys::new(b"fanrush-receipt-key", None);
    let whole = reveal();
    let page = |from: usize, to: usize, fans: &[fanrush::rules::line::draw::RevealRow]| {
        serde_json::to_string(&DrawPageBody {
            event_id: EVENT,
            commitment: &whole.commitment,
            seed: &whole.seed,
            digest: &whole.digest,
            revealed_at: "2026-12-07T10:01:00.000Z".into(),
            prequeued: whole.fans.len(),
            fans: &fans[from..to],
            next: (to < fans.len()).then_some(to),
        })
        .unwrap()
    };
    let view = json!({ "eventId": EVENT, "title": "Drop", "opensAt": "2026-12-07T10:00:00Z", "closesAt": "2026-12-07T11:00:00Z",
                       "capacity": 100, "remaining": 0, "drawCommitment": commitment(SEED),
                       "drawDigest": whole.digest });
    api.answer_when(&["/events/drop"], 200, &view.to_string());
    api.answer_when(
        &["/receipt-keys"],
        200,
        &serde_json::to_string(&ReceiptKeysBody { keys: keys.published() }).unwrap(),
    );
    api.answer_when(&["/draws/drop", "from=0"], 200, &page(0, 20, &whole.fans));
    api.answer_when(&["/draws/drop", "from=20"], 200, &page(20, 30, &whole.fans));
    let genuine = files.write("receipt.json", &receipt(&keys.current));
    let run = |extra: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_fanrush"));
        c.args(["verify-draw", "--event", EVENT, "--api", &api.url(""), "--fan", "fan-7"]).args(extra);
        c.arg("--receipt").arg(&genuine).output().unwrap()
    };
    let saved = files.dir.join("saved.json");
    let out = run(&["--save-reveal", saved.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let draws: Vec<String> = api.requests().into_iter().map(|r| r.path).filter(|p| p.starts_with("/draws/")).collect();
    assert_eq!(draws, ["/draws/drop?from=0", "/draws/drop?from=20"], "every page, in order");
    let kept: Reveal = serde_json::from_str(&std::fs::read_to_string(&saved).unwrap()).unwrap();
    assert_eq!(kept, whole, "the saved reveal is the whole draw");

    // A second page whose first two fans were swapped (where they were
    // counted too, so the digest holds) fails by row.
    let mut swapped = whole.fans.clone();
    (swapped[20].fan, swapped[21].fan) = (swapped[21].fan.clone(), swapped[20].fan.clone());
    (swapped[20].counted, swapped[21].counted) = (swapped[21].counted, swapped[20].counted);
    api.answer_when(&["/draws/drop", "from=20"], 200, &page(20, 30, &swapped));
    let out = run(&[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("row 20"), "{err}");
}
