//! The invariants of the fan path, checked after the queue drained: pure
//! functions of what fans were told, what PostgreSQL holds and what the
//! gate holds.

use std::collections::{HashMap, HashSet};

/// What one fan was told, over all its requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Told {
    /// Accepted (202 or 200) at this position, every time it was answered so.
    Accepted(i64),
    /// Accepted, but at different positions on different answers.
    Contradicted,
    /// Refused (409 sold out or another 4xx), never accepted.
    Refused,
    /// Never got a final answer (gave up retrying).
    Unanswered,
}

/// What the gate holds for the event once everything settled.
#[derive(Debug, Clone, Default)]
pub struct GateView {
    /// Slots the gate counts as gone.
    pub taken: i64,
    /// fan → (position, still pending).
    pub records: HashMap<String, (i64, bool)>,
}

/// The figures of the drill's table that must be zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub accepted: usize,
    pub rows: usize,
    /// Fans told they are in whose row is missing or at another position.
    pub lost: usize,
    /// Rows beyond one per fan, plus rows sharing a position.
    pub duplicates: usize,
    /// Rows beyond capacity.
    pub oversold: usize,
    /// Slots held by the gate with no entry behind them, or left unsold
    /// while fans were turned away as sold out.
    pub leaked: usize,
    /// Rows for fans who were never told they are in.
    pub ghost: usize,
}

impl Tally {
    pub fn clean(&self) -> bool {
        self.lost + self.duplicates + self.oversold + self.leaked + self.ghost == 0
    }
}

/// Checks every invariant. `sold_out_answers` is how many 409 `sold_out`
/// answers fans got: once any fan was turned away, every slot must be filled.
pub fn check(
    capacity: i64,
    told: &HashMap<String, Told>,
    rows: &[(String, i64)],
    gate: &GateView,
    sold_out_answers: usize,
) -> Tally {
    let by_fan: HashMap<&str, i64> = rows.iter().map(|(f, p)| (f.as_str(), *p)).collect();
    let positions: HashSet<i64> = rows.iter().map(|(_, p)| *p).collect();
    let duplicates = (rows.len() - by_fan.len()) + (rows.len() - positions.len());

    let mut accepted = 0;
    let mut lost = 0;
    for t in told.values().copied() {
        match t {
            Told::Accepted(_) | Told::Contradicted => accepted += 1,
            Told::Refused | Told::Unanswered => {}
        }
    }
    for (fan, t) in told {
        match t {
            Told::Accepted(p) if by_fan.get(fan.as_str()) == Some(p) => {}
            Told::Accepted(_) | Told::Contradicted => lost += 1,
            _ => {}
        }
    }
    let ghost =
        by_fan.keys().filter(|f| !matches!(told.get(**f), Some(Told::Accepted(_) | Told::Contradicted))).count();

    let rows_n = rows.len() as i64;
    let unmatched =
        gate.records.iter().filter(|(f, (p, pending))| *pending || by_fan.get(f.as_str()) != Some(p)).count();
    let held_without_entry = (gate.taken - rows_n).max(0) as usize;
    let unsold = if sold_out_answers > 0 { (capacity - rows_n).max(0) as usize } else { 0 };
    Tally {
        accepted,
        rows: rows.len(),
        lost,
        duplicates,
        oversold: (rows_n - capacity).max(0) as usize,
        leaked: held_without_entry.max(unmatched).max(unsold),
        ghost,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn told(items: &[(&str, Told)]) -> HashMap<String, Told> {
        items.iter().map(|(f, t)| (f.to_string(), *t)).collect()
    }

    fn rows(items: &[(&str, i64)]) -> Vec<(String, i64)> {
        items.iter().map(|(f, p)| (f.to_string(), *p)).collect()
    }

    fn gate(taken: i64, items: &[(&str, i64)]) -> GateView {
        GateView { taken, records: items.iter().map(|(f, p)| (f.to_string(), (*p, false))).collect() }
    }

    #[test]
    fn a_consistent_sell_out_is_clean() {
        let t = told(&[("a", Told::Accepted(1)), ("b", Told::Accepted(2)), ("c", Told::Refused)]);
        let r = rows(&[("a", 1), ("b", 2)]);
        let tally = check(2, &t, &r, &gate(2, &[("a", 1), ("b", 2)]), 1);
        assert!(tally.clean(), "{tally:?}");
        assert_eq!((tally.accepted, tally.rows), (2, 2));
    }

    #[test]
    fn every_violation_is_counted() {
        // a: row at another position; b: no row; c: refused but has a row;
        // d: contradicted; the gate holds a pending slot for e.
        let t = told(&[
            ("a", Told::Accepted(1)),
            ("b", Told::Accepted(2)),
            ("c", Told::Refused),
            ("d", Told::Contradicted),
        ]);
        let r = rows(&[("a", 5), ("c", 3), ("d", 3)]);
        let mut g = gate(4, &[("a", 5), ("c", 3), ("d", 3)]);
        g.records.insert("e".into(), (6, true));
        let tally = check(2, &t, &r, &g, 1);
        assert_eq!(tally.lost, 3, "a, b and d");
        assert_eq!(tally.ghost, 1, "c");
        assert_eq!(tally.duplicates, 1, "c and d share position 3");
        assert_eq!(tally.oversold, 1);
        assert_eq!(tally.leaked, 1, "e's pending slot");
    }

    #[test]
    fn slots_left_unsold_while_fans_were_turned_away_are_leaked() {
        let t = told(&[("a", Told::Accepted(1)), ("b", Told::Refused)]);
        let r = rows(&[("a", 1)]);
        assert_eq!(check(3, &t, &r, &gate(1, &[("a", 1)]), 1).leaked, 2);
        assert_eq!(check(3, &t, &r, &gate(1, &[("a", 1)]), 0).leaked, 0, "nobody was turned away");
    }
}
