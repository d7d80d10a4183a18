//! Session settings as one typed table ([`SETTINGS`]): each setting's name, default, how a
//! value is checked (a bad one is 22023, a value DuetDB cannot honour 0A000), and what it
//! changes besides the text `SHOW` returns. The session keeps the text of every setting and
//! typed copies of those its statements read ([`Settings`]); the router's settings live in
//! the session's route slot, which the router reads.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use datafusion::prelude::SessionContext;
use duet_router::routing::Engine;
use duet_rowstore::Isolation;

use super::Session;
use crate::error::{PgError, Result, SqlState};

/// A checked value, as `apply` takes it.
pub(super) enum Value {
    Text,
    /// A time zone, as DataFusion's `execution.time_zone` takes it.
    Zone(String),
    Flag(bool),
    Duration(Duration),
    Bytes(u64),
    Count(usize),
    Fraction(f64),
    Engine(Engine),
    /// An isolation level; `serializable`: asked for SERIALIZABLE, which runs as
    /// REPEATABLE READ.
    Isolation {
        level: Isolation,
        serializable: bool,
    },
}

/// Why a value was refused.
enum Refused {
    /// 22023: not a value of the setting.
    Invalid,
    /// 0A000: a value PostgreSQL takes that DuetDB cannot honour (`what` is not supported).
    Unsupported(String),
}

/// What `SHOW` returns after a `SET`.
enum Shown {
    /// The value as written.
    AsWritten,
    /// A normalised spelling.
    Text(&'static str),
    /// Unchanged (the setting shows something else, e.g. the current transaction's level).
    Unchanged,
}

/// One setting.
pub(super) struct Def {
    pub name: &'static str,
    default: fn() -> String,
    parse: fn(&str) -> std::result::Result<Value, Refused>,
    apply: fn(&mut Session, Value) -> Result<Shown>,
}

fn text(_: &str) -> std::result::Result<Value, Refused> {
    Ok(Value::Text)
}

fn keep(_: &mut Session, _: Value) -> Result<Shown> {
    Ok(Shown::AsWritten)
}

fn duration(v: &str) -> std::result::Result<Value, Refused> {
    parse_duration_ms(v)
        .map(Value::Duration)
        .ok_or(Refused::Invalid)
}

fn flag(v: &str) -> std::result::Result<Value, Refused> {
    match v.to_ascii_lowercase().as_str() {
        "on" | "true" | "1" => Ok(Value::Flag(true)),
        "off" | "false" | "0" => Ok(Value::Flag(false)),
        _ => Err(Refused::Invalid),
    }
}

fn isolation(v: &str) -> std::result::Result<Value, Refused> {
    let (level, serializable) = match v.to_ascii_lowercase().trim_matches('\'') {
        "read committed" | "read uncommitted" => (Isolation::ReadCommitted, false),
        "repeatable read" => (Isolation::RepeatableRead, false),
        "serializable" => (Isolation::RepeatableRead, true),
        _ => return Err(Refused::Invalid),
    };
    Ok(Value::Isolation {
        level,
        serializable,
    })
}

/// The level of an isolation value; SERIALIZABLE (run as REPEATABLE READ) is told to the
/// client.
fn isolation_level(s: &mut Session, v: Value) -> Option<Isolation> {
    let Value::Isolation {
        level,
        serializable,
    } = v
    else {
        return None;
    };
    if serializable {
        s.notices.push(super::SERIALIZABLE_NOTICE.into());
    }
    Some(level)
}

/// A setting whose value is only shown.
macro_rules! shown {
    ($name:literal, $default:literal) => {
        Def {
            name: $name,
            default: || $default.to_string(),
            parse: text,
            apply: keep,
        }
    };
}

/// Every setting a session knows, with its default. A dotted name not listed here is a
/// custom setting (PostgreSQL's placeholder variables): stored and shown as written;
/// `datafusion.*` names set DataFusion's own options.
pub(super) static SETTINGS: &[Def] = &[
    shown!("application_name", ""),
    Def {
        name: "client_encoding",
        default: || "UTF8".into(),
        parse: |v| match v.to_ascii_uppercase().as_str() {
            "UTF8" | "UTF-8" | "UNICODE" => Ok(Value::Text),
            _ => Err(Refused::Unsupported(format!("client_encoding {v}"))),
        },
        apply: keep,
    },
    shown!("block_size", "8192"),
    shown!("client_min_messages", "notice"),
    shown!("datestyle", "ISO, MDY"),
    shown!("default_table_access_method", "heap"),
    Def {
        name: "default_transaction_isolation",
        default: || isolation_name(Isolation::ReadCommitted).into(),
        parse: isolation,
        apply: |s, v| {
            Ok(match isolation_level(s, v) {
                Some(level) => Shown::Text(s.set_default_isolation(level)),
                None => Shown::AsWritten,
            })
        },
    },
    shown!("default_transaction_read_only", "off"),
    shown!("extra_float_digits", "1"),
    shown!("integer_datetimes", "on"),
    shown!("intervalstyle", "postgres"),
    shown!("lc_messages", "C"),
    Def {
        name: "lock_timeout",
        default: || "0".into(),
        parse: duration,
        apply: |s, v| {
            if let Value::Duration(d) = v {
                s.settings.lock_timeout = d;
            }
            Ok(Shown::AsWritten)
        },
    },
    shown!("max_identifier_length", "63"),
    shown!("max_index_keys", "32"),
    shown!("search_path", "\"$user\", public"),
    shown!("server_encoding", "UTF8"),
    Def {
        name: "server_version",
        default: || duet_wire::SERVER_VERSION.into(),
        parse: text,
        apply: keep,
    },
    shown!("server_version_num", "150000"),
    shown!("standard_conforming_strings", "on"),
    Def {
        name: "statement_timeout",
        default: || "0".into(),
        parse: duration,
        apply: |s, v| {
            if let Value::Duration(d) = v {
                s.settings.statement_timeout = d;
            }
            Ok(Shown::AsWritten)
        },
    },
    shown!("idle_in_transaction_session_timeout", "0"),
    Def {
        name: "timezone",
        default: || "UTC".into(),
        parse: |v| {
            let v = v.trim_matches('\'');
            match crate::datetime::zone_of(v) {
                Some(_) if v.eq_ignore_ascii_case("utc") || v.eq_ignore_ascii_case("gmt") => {
                    Ok(Value::Zone("+00:00".into()))
                }
                Some(_) => Ok(Value::Zone(v.to_string())),
                None => Err(Refused::Invalid),
            }
        },
        apply: |s, v| {
            if let Value::Zone(z) = v {
                s.set_datafusion_option("datafusion.execution.time_zone", &z)?;
            }
            Ok(Shown::AsWritten)
        },
    },
    Def {
        name: "transaction_isolation",
        default: || isolation_name(Isolation::ReadCommitted).into(),
        parse: isolation,
        apply: |s, v| {
            if let Some(level) = isolation_level(s, v) {
                s.set_transaction_isolation(level);
            }
            Ok(Shown::Unchanged)
        },
    },
    shown!("transaction_read_only", "off"),
    shown!("bytea_output", "hex"),
    shown!("synchronous_commit", "on"),
    shown!("row_security", "on"),
    shown!("geqo", "on"),
    shown!("jit", "off"),
    shown!("work_mem", "4MB"),
    shown!("maintenance_work_mem", "64MB"),
    Def {
        name: "duet.engine",
        default: || "auto".into(),
        parse: |v| {
            Engine::parse(&v.to_ascii_lowercase())
                .map(Value::Engine)
                .ok_or(Refused::Invalid)
        },
        apply: |s, v| {
            if let Value::Engine(e) = v {
                s.route.settings.lock().engine = e;
            }
            Ok(Shown::AsWritten)
        },
    },
    Def {
        name: "duet.learner_wait_timeout",
        default: || "2s".into(),
        parse: duration,
        apply: |s, v| {
            if let Value::Duration(d) = v {
                s.route.settings.lock().learner_wait = d;
            }
            Ok(Shown::AsWritten)
        },
    },
    Def {
        name: "duet.analyze_sample_chunks",
        default: || duet_router::sample::SAMPLE_CHUNKS.to_string(),
        parse: |v| {
            v.parse()
                .ok()
                .filter(|n: &usize| (1..=1_000_000).contains(n))
                .map(Value::Count)
                .ok_or(Refused::Invalid)
        },
        apply: |s, v| {
            if let Value::Count(n) = v {
                s.settings.analyze_sample_chunks = n;
            }
            Ok(Shown::AsWritten)
        },
    },
    Def {
        name: "duet.routing_sample_rate",
        default: || "0.01".into(),
        parse: |v| {
            v.parse()
                .ok()
                .filter(|r: &f64| (0.0..=1.0).contains(r))
                .map(Value::Fraction)
                .ok_or(Refused::Invalid)
        },
        apply: |s, v| {
            if let Value::Fraction(r) = v {
                s.route.settings.lock().sample_rate = r;
            }
            Ok(Shown::AsWritten)
        },
    },
    Def {
        name: "duet.fast_path",
        default: || "on".into(),
        parse: flag,
        apply: |s, v| {
            if let Value::Flag(on) = v {
                s.settings.fast_path = on;
            }
            Ok(Shown::AsWritten)
        },
    },
    Def {
        name: "duet.query_memory_limit",
        default: || format!("{}MB", default_query_memory() >> 20),
        parse: |v| {
            parse_memory(v)
                .filter(|&l| l > 0)
                .map(Value::Bytes)
                .ok_or(Refused::Invalid)
        },
        apply: |s, v| {
            if let Value::Bytes(limit) = v {
                set_memory_limit(&s.ctx, limit)?;
                *s.planning.lock() = None;
            }
            Ok(Shown::AsWritten)
        },
    },
];

/// A session's settings: the text `SHOW` returns for each, and typed copies of those its
/// statements read on every run.
pub(crate) struct Settings {
    shown: BTreeMap<String, String>,
    /// `statement_timeout` (zero: none).
    pub statement_timeout: Duration,
    /// `lock_timeout` (zero: none).
    pub lock_timeout: Duration,
    /// `duet.fast_path`: primary-key point statements skip DataFusion (see fastpath.rs).
    pub fast_path: bool,
    /// `default_transaction_isolation` (SET SESSION CHARACTERISTICS sets it too).
    pub default_isolation: Isolation,
    /// `duet.analyze_sample_chunks`: column-replica chunks ANALYZE reads at most.
    pub analyze_sample_chunks: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            shown: SETTINGS
                .iter()
                .map(|d| (d.name.to_string(), (d.default)()))
                .collect(),
            statement_timeout: Duration::ZERO,
            lock_timeout: Duration::ZERO,
            fast_path: true,
            default_isolation: Isolation::ReadCommitted,
            analyze_sample_chunks: duet_router::sample::SAMPLE_CHUNKS,
        }
    }
}

impl Settings {
    /// The text of setting `name` (canonical), if it exists.
    pub fn shown(&self, name: &str) -> Option<&str> {
        self.shown.get(name).map(String::as_str)
    }

    /// Every setting's name and text.
    pub fn all(&self) -> impl Iterator<Item = (&str, &str)> {
        self.shown.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Sets the text `SHOW name` returns.
    pub(super) fn show(&mut self, name: &str, text: &str) {
        self.shown.insert(name.to_string(), text.to_string());
    }
}

impl Session {
    /// `SET name = value` (`name` canonical, see [`setting_name`]).
    /// RESET `name` (or every setting): back to its default. Settings that cannot be set
    /// (`server_version`) keep their value.
    pub(super) fn reset_setting(&mut self, name: Option<&str>) -> Result<()> {
        for def in SETTINGS {
            match name {
                Some(n) if n != def.name => continue,
                Some(_) => return self.assign_setting(def.name, (def.default)()),
                None => {
                    let _ = self.assign_setting(def.name, (def.default)());
                }
            }
        }
        match name {
            Some(n) if !n.contains('.') => Err(PgError::new(
                SqlState::UndefinedObject,
                format!("unrecognized configuration parameter \"{n}\""),
            )),
            Some(n) => {
                self.settings.show(n, "");
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// The server's own settings, which `SHOW` reads and a session cannot change (each is a
    /// flag or key of the config file): name, value, description.
    pub(super) fn server_settings(&self) -> Vec<(&'static str, String, &'static str)> {
        let store = &self.shared.store;
        let (row_cache, block_cache) = store.cache_budgets();
        let mb = |bytes: u64| format!("{}MB", bytes >> 20);
        let mut out = vec![
            (
                "duet.gc_life_time",
                format!("{}s", store.gc_life_time().as_secs()),
                "How long a row version replaced by a newer one stays readable (--gc-life-time-s).",
            ),
            (
                "duet.row_cache_size",
                mb(row_cache),
                "Memory of the row cache of point reads (--row-cache-size).",
            ),
            (
                "duet.block_cache_size",
                mb(block_cache),
                "Memory of RocksDB's block cache (--block-cache-size).",
            ),
        ];
        let column_cache = self
            .shared
            .services
            .as_ref()
            .and_then(|s| s.replicas.column_cache_size());
        if let Some(bytes) = column_cache {
            out.push((
                "duet.column_cache_size",
                mb(bytes),
                "Memory of the column cache: stable chunks of the column replica are read from their files through it (--column-cache-size).",
            ));
        }
        if let Some(disk) = store.disk_guard() {
            out.push((
                "duet.disk_reserve",
                mb(disk.reserve()),
                "Free space the data directory's disk keeps: writes fail with 53100 below it (--disk-reserve-mb).",
            ));
        }
        out.sort_by_key(|s| s.0);
        out
    }

    pub(super) fn assign_setting(&mut self, name: &str, value: String) -> Result<()> {
        if self.server_settings().iter().any(|s| s.0 == name) {
            return Err(PgError::new(
                SqlState::CantChangeRuntimeParam,
                format!("parameter \"{name}\" cannot be changed now"),
            )
            .with_hint("It is a setting of the server: its flag or config file key sets it."));
        }
        let invalid = || {
            PgError::new(
                SqlState::InvalidParameterValue,
                format!(
                    "invalid value for parameter \"{}\": \"{value}\"",
                    shown_name(name)
                ),
            )
        };
        let Some(def) = SETTINGS.iter().find(|d| d.name == name) else {
            if name.starts_with("datafusion.") {
                self.set_datafusion_option(name, &value)?;
            } else if !name.contains('.') {
                return Err(PgError::new(
                    SqlState::UndefinedObject,
                    format!("unrecognized configuration parameter \"{name}\""),
                ));
            }
            self.settings.show(name, &value);
            return Ok(());
        };
        let parsed = match (def.parse)(&value) {
            Ok(v) => v,
            Err(Refused::Invalid) => return Err(invalid()),
            Err(Refused::Unsupported(what)) => return Err(PgError::unsupported(what)),
        };
        match (def.apply)(self, parsed)? {
            Shown::AsWritten => self.settings.show(name, &value),
            Shown::Text(t) => self.settings.show(name, t),
            Shown::Unchanged => {}
        }
        Ok(())
    }

    /// DataFusion's own options (e.g. datafusion.explain.show_statistics), per session.
    fn set_datafusion_option(&mut self, name: &str, value: &str) -> Result<()> {
        // PostgreSQL spells booleans on/off; DataFusion wants true/false.
        let df_value = match value {
            "on" => "true",
            "off" => "false",
            v => v,
        };
        let state = self.ctx.state_ref();
        let mut state = state.write();
        state
            .config_mut()
            .options_mut()
            .set(name, df_value)
            .map_err(|e| PgError::new(SqlState::InvalidParameterValue, e.to_string()))?;
        drop(state);
        *self.planning.lock() = None;
        Ok(())
    }
}

/// How PostgreSQL spells an isolation level in `SHOW`.
pub(super) fn isolation_name(level: Isolation) -> &'static str {
    match level {
        Isolation::ReadCommitted => "read committed",
        Isolation::RepeatableRead => "repeatable read",
    }
}

/// Canonical (lower-case, alias-resolved) name of a setting.
/// The column name `SHOW` gives a setting: its name as PostgreSQL spells it (`TimeZone`,
/// `DateStyle`, `IntervalStyle`; the others are lower case).
pub(crate) fn shown_name(key: &str) -> &str {
    match key {
        "timezone" => "TimeZone",
        "datestyle" => "DateStyle",
        "intervalstyle" => "IntervalStyle",
        other => other,
    }
}

pub(crate) fn setting_name(raw: &str) -> String {
    let n = raw.trim_matches('"').to_ascii_lowercase();
    match n.as_str() {
        "time zone" | "time_zone" => "timezone".into(),
        "transaction isolation level" => "transaction_isolation".into(),
        "names" => "client_encoding".into(),
        _ => n,
    }
}

/// A PostgreSQL-style duration setting: a number of milliseconds, or with a unit
/// (`ms`, `s`, `min`).
pub(super) fn parse_duration_ms(v: &str) -> Option<Duration> {
    let v = v.trim().to_ascii_lowercase();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: u64 = num.parse().ok()?;
    let ms = match unit.trim() {
        "" | "ms" => n,
        "s" => n.checked_mul(1000)?,
        "min" => n.checked_mul(60_000)?,
        _ => return None,
    };
    Some(Duration::from_millis(ms))
}

/// The default `duet.query_memory_limit`: a quarter of the machine's memory (1 GiB if
/// /proc/meminfo cannot be read).
pub fn default_query_memory() -> u64 {
    *DEFAULT_QUERY_MEMORY
}

/// Read once: every new session asks for it twice.
static DEFAULT_QUERY_MEMORY: std::sync::LazyLock<u64> = std::sync::LazyLock::new(|| {
    duet_common::fs::physical_memory().map_or(1 << 30, |total| total / 4)
});

/// A PostgreSQL-style memory setting: a number with a unit (`B`, `kB`, `MB`, `GB`, `TB`);
/// a bare number is kilobytes, as for `work_mem`.
pub fn parse_memory(v: &str) -> Option<u64> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "b" => 1,
        "" | "kb" => 1 << 10,
        "mb" => 1 << 20,
        "gb" => 1 << 30,
        "tb" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// Gives `ctx` a memory pool of `limit` bytes per query. Each sort keeps a reservation
/// for merging its spill files (DataFusion's default 10 MB per partition); it is scaled down
/// to an eighth of the limit so that small limits still leave room to sort and spill.
pub(super) fn set_memory_limit(ctx: &SessionContext, limit: u64) -> Result<()> {
    let state = ctx.state();
    let mut config = state.config().clone();
    let reserve = usize::try_from(limit / 8)
        .unwrap_or(usize::MAX)
        .min(10 << 20);
    config.options_mut().execution.sort_spill_reservation_bytes = reserve;
    let new_state =
        datafusion::execution::session_state::SessionStateBuilder::new_from_existing(state)
            .with_config(config)
            .with_runtime_env(runtime_env(limit)?)
            .build();
    *ctx.state_ref().write() = new_state;
    Ok(())
}

/// A runtime whose memory pool bounds each query of the session to `limit` bytes. Sorts
/// and aggregations spill to temporary files past it; what cannot spill (a hash join's
/// build side) fails with ResourcesExhausted, which is SQLSTATE 53200.
fn runtime_env(limit: u64) -> Result<Arc<datafusion::execution::runtime_env::RuntimeEnv>> {
    use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
    let pool = TrackConsumersPool::new(
        FairSpillPool::new(usize::try_from(limit).unwrap_or(usize::MAX)),
        std::num::NonZeroUsize::new(3).expect("3 is not zero"),
    );
    Ok(datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(pool))
        .build_arc()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_is_a_valid_value_of_its_setting() {
        for d in SETTINGS {
            let default = (d.default)();
            assert!(
                (d.parse)(&default).is_ok(),
                "{} = {default:?} is refused by its own parser",
                d.name
            );
        }
        let names: std::collections::HashSet<_> = SETTINGS.iter().map(|d| d.name).collect();
        assert_eq!(names.len(), SETTINGS.len(), "a setting is listed twice");
    }

    #[test]
    fn values_are_checked_by_type() {
        let find = |n: &str| SETTINGS.iter().find(|d| d.name == n).unwrap();
        assert!((find("statement_timeout").parse)("soon").is_err());
        assert!((find("statement_timeout").parse)("5s").is_ok());
        assert!((find("duet.routing_sample_rate").parse)("1.5").is_err());
        assert!((find("duet.fast_path").parse)("maybe").is_err());
        assert!(matches!(
            (find("client_encoding").parse)("LATIN1"),
            Err(Refused::Unsupported(_))
        ));
        assert_eq!(parse_memory("64MB"), Some(64 << 20));
        assert_eq!(parse_memory("8"), Some(8 << 10));
        assert_eq!(parse_duration_ms("2min"), Some(Duration::from_secs(120)));
        assert_eq!(setting_name("\"TIME ZONE\""), "timezone");
    }

    #[test]
    fn one_version_everywhere() {
        let shown = Settings::default();
        assert_eq!(
            shown.shown("server_version"),
            Some(duet_wire::SERVER_VERSION)
        );
        assert!(super::super::VERSION_STRING
            .starts_with(&format!("PostgreSQL {} ", duet_wire::SERVER_VERSION)));
    }
}
