//! The gate's Lua, as one Redis function library (`FUNCTION LOAD`, called
//! with `FCALL`): `lua/prelude.lua` (the per-event fence and a fan's
//! record) and `lua/pace.lua` (the event and its line's pace) once at its
//! top, then each script as a function of its own.
//!
//! A library, unlike a script sent with `EVALSHA`, keeps its top-level
//! values for the life of the server process: the library reads its
//! server's `run_id` once (`INFO server`) and every fenced function gets it
//! as `ARGV[1]`. So the fence compares an event's stamp with the server the
//! function actually runs on, whichever node of a cluster that is, and the
//! client never has to know.
//!
//! The library's name and its functions' names end in a digest of its
//! text, so two versions of fanrush running side by side during a deploy
//! each call their own. A server that does not hold the library (a new
//! node, a failover to a replica that never had it) answers "Function not
//! found", and the caller loads it and calls again (see `EntryGate::call`).

use std::sync::LazyLock;

/// One function of the gate's library.
#[derive(Debug)]
pub(super) struct GateFunction {
    /// Its name in the library (without the version).
    pub name: &'static str,
    /// Whether it gets its server's `run_id` as `ARGV[1]` before the
    /// caller's arguments.
    pub fenced: bool,
    /// Whether it never writes (`no-writes`): it may run when the server
    /// is out of memory.
    pub read_only: bool,
}

impl GateFunction {
    /// The name to `FCALL`: the library's version appended.
    pub fn called(&self) -> String {
        format!("{}_{}", self.name, LIBRARY.version)
    }
}

pub(super) static ADMIT: GateFunction = GateFunction { name: "admit", fenced: true, read_only: false };
pub(super) static LINE: GateFunction = GateFunction { name: "line", fenced: true, read_only: false };
pub(super) static CONFIRM: GateFunction = GateFunction { name: "confirm", fenced: false, read_only: false };
pub(super) static RELEASE: GateFunction = GateFunction { name: "release", fenced: false, read_only: false };
pub(super) static EVENT: GateFunction = GateFunction { name: "event", fenced: true, read_only: true };
pub(super) static ENTRY: GateFunction = GateFunction { name: "entry", fenced: true, read_only: true };
pub(super) static LOST: GateFunction = GateFunction { name: "lost", fenced: true, read_only: false };
pub(super) static PUBLISH: GateFunction = GateFunction { name: "publish", fenced: true, read_only: false };
pub(super) static RESTORE: GateFunction = GateFunction { name: "restore", fenced: true, read_only: false };
pub(super) static RETIRE: GateFunction = GateFunction { name: "retire", fenced: true, read_only: false };
pub(super) static ARCHIVE: GateFunction = GateFunction { name: "archive", fenced: true, read_only: false };
pub(super) static DIRECTORY: GateFunction = GateFunction { name: "dir", fenced: true, read_only: false };

/// Each function and its body, in the library's order.
const BODIES: [(&GateFunction, &str); 12] = [
    (&ADMIT, include_str!("lua/admit.lua")),
    (&LINE, include_str!("lua/line.lua")),
    (&CONFIRM, include_str!("lua/confirm.lua")),
    (&RELEASE, include_str!("lua/release.lua")),
    (&EVENT, include_str!("lua/event.lua")),
    (&ENTRY, include_str!("lua/entry.lua")),
    (&LOST, include_str!("lua/lost.lua")),
    (&PUBLISH, include_str!("lua/publish.lua")),
    (&RESTORE, include_str!("lua/restore.lua")),
    (&RETIRE, include_str!("lua/retire.lua")),
    (&ARCHIVE, include_str!("lua/archive.lua")),
    (&DIRECTORY, include_str!("lua/dir.lua")),
];

/// The library as loaded, and its version.
pub(super) struct Library {
    pub source: String,
    pub version: String,
}

pub(super) static LIBRARY: LazyLock<Library> = LazyLock::new(|| {
    let mut body = String::new();
    body.push_str(include_str!("lua/prelude.lua"));
    body.push_str(include_str!("lua/pace.lua"));
    body.push_str(SERVER_RUN_ID);
    let mut registrations = String::new();
    for (function, text) in BODIES {
        let args = if function.fenced { "local ARGV = with_run_id(args)" } else { "local ARGV = args" };
        let flags = if function.read_only { "{'no-writes'}" } else { "{}" };
        registrations.push_str(&format!(
            "redis.register_function{{function_name = '{}_@VERSION@', flags = {flags}, callback = function(KEYS, args)\n{args}\n{text}\nend}}\n",
            function.name
        ));
    }
    body.push_str(&registrations);
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, body.as_bytes());
    let version: String = digest.as_ref()[..6].iter().map(|b| format!("{b:02x}")).collect();
    let source = format!("#!lua name=fanrush_{version}\n{}", body.replace("@VERSION@", &version));
    Library { source, version }
});

/// The library's own helpers: its server's `run_id`, read once per server
/// process (the library's top level lives as long as the process), and a
/// fenced function's arguments with it in front.
const SERVER_RUN_ID: &str = r#"
local server_run_id = nil
local function with_run_id(args)
  if not server_run_id then
    server_run_id = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
  end
  local argv = {server_run_id}
  for i = 1, #args do argv[i + 1] = args[i] end
  return argv
end
"#;

/// The library's text, for a peer that loads it itself (`make bench`'s
/// Node.js stack): the same functions, called the same way.
pub fn gate_library() -> &'static str {
    &LIBRARY.source
}

/// The name a peer calls `admit.lua` and `confirm.lua` by.
pub fn admit_function() -> String {
    ADMIT.called()
}

pub fn confirm_function() -> String {
    CONFIRM.called()
}
