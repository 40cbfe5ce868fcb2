//! A small `--flag value` parser for the command-line tools (the operator
//! CLI `fanrush`, the local stand-ins `fanrush-local`): their flags are few
//! and flat, and a full argument-parsing crate would cost more build time
//! than it saves. No function uses it.

use std::collections::HashMap;
use std::str::FromStr;

/// Parsed `--name value` pairs and bare `--switch`es.
pub struct Args {
    values: HashMap<String, String>,
}

impl Args {
    /// Parses `args`; `switches` are the flags that take no value.
    pub fn parse(args: &[String], known: &[&str], switches: &[&str]) -> Result<Self, String> {
        let mut values = HashMap::new();
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let name = arg.strip_prefix("--").ok_or_else(|| format!("unexpected argument {arg:?}"))?;
            if switches.contains(&name) {
                values.insert(name.to_owned(), "true".to_owned());
            } else if known.contains(&name) {
                let value = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
                values.insert(name.to_owned(), value.clone());
            } else {
                return Err(format!("unknown option --{name}"));
            }
        }
        Ok(Self { values })
    }

    pub fn get<T: FromStr>(&self, name: &str, default: T) -> Result<T, String> {
        match self.values.get(name) {
            Some(v) => v.parse().map_err(|_| format!("--{name}: {v:?} is not valid")),
            None => Ok(default),
        }
    }

    pub fn opt(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }
}

impl Args {
    /// Whether a bare `--switch` was given.
    pub fn switch(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    /// A required value.
    pub fn need<T: FromStr>(&self, name: &str) -> Result<T, String> {
        let v = self.values.get(name).ok_or_else(|| format!("--{name} is required"))?;
        v.parse().map_err(|_| format!("--{name}: {v:?} is not valid"))
    }
}
