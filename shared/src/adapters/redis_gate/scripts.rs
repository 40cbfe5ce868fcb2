//! The gate's Lua scripts, each loaded behind `lua/prelude.lua` (the fence
//! and a fan's record, written once); the two that pace a line also behind
//! `lua/pace.lua`. `redis::Script` sends each by its SHA-1 (`EVALSHA`) and
//! loads it again when a server does not know it (a failover, a restart).

use redis::Script;
use std::sync::LazyLock;

macro_rules! gate_source {
    ($($file:literal),+) => {
        concat!(include_str!("lua/prelude.lua"), $(include_str!($file)),+)
    };
}

macro_rules! gate_script {
    ($($file:literal),+) => {
        LazyLock::new(|| Script::new(gate_source!($($file),+)))
    };
}

/// The admission script and the confirm as the gate loads them (the
/// prelude in front), for a peer that calls them itself (`make bench`'s
/// Node.js stack): the same text, called the same way (`EntryGate`'s
/// keys and arguments).
pub const ADMIT_SOURCE: &str = gate_source!("lua/pace.lua", "lua/admit.lua");
pub const CONFIRM_SOURCE: &str = gate_source!("lua/confirm.lua");

pub(super) static ADMIT: LazyLock<Script> = LazyLock::new(|| Script::new(ADMIT_SOURCE));
pub(super) static LINE: LazyLock<Script> = gate_script!("lua/pace.lua", "lua/line.lua");
pub(super) static CONFIRM: LazyLock<Script> = LazyLock::new(|| Script::new(CONFIRM_SOURCE));
pub(super) static RELEASE: LazyLock<Script> = gate_script!("lua/release.lua");
pub(super) static EVENT: LazyLock<Script> = gate_script!("lua/event.lua");
pub(super) static ENTRY: LazyLock<Script> = gate_script!("lua/entry.lua");
pub(super) static LOST: LazyLock<Script> = gate_script!("lua/lost.lua");
pub(super) static PUBLISH: LazyLock<Script> = gate_script!("lua/publish.lua");
pub(super) static RESTORE: LazyLock<Script> = gate_script!("lua/restore.lua");
pub(super) static RETIRE: LazyLock<Script> = gate_script!("lua/retire.lua");
pub(super) static ARCHIVE: LazyLock<Script> = gate_script!("lua/archive.lua");
pub(super) static DIRECTORY: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/dir.lua")));
