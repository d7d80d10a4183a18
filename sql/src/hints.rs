//! Engine hints in comments: `/*+ engine(column) */` for every scan of the statement,
//! `/*+ engine(row t1) engine(column t2 t3) */` per table. Several hints may share one
//! comment; a comment that starts with `/*+` and holds anything else is reported as a notice
//! and otherwise ignored, as Oracle and pg_hint_plan do with hints they do not know.

use duet_router::routing::{Engine, Hints};

/// The hints in `text`, and notices for the parts that are not hints.
pub fn parse(text: &str) -> (Hints, Vec<String>) {
    let mut hints = Hints::default();
    let mut problems = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("/*+") {
        let body_start = start + 3;
        let Some(len) = rest[body_start..].find("*/") else {
            break;
        };
        let body = &rest[body_start..body_start + len];
        parse_comment(body, &mut hints, &mut problems);
        rest = &rest[body_start + len + 2..];
    }
    (hints, problems)
}

fn parse_comment(body: &str, hints: &mut Hints, problems: &mut Vec<String>) {
    let mut s = body.trim();
    while !s.is_empty() {
        let Some(open) = s.find('(') else {
            problems.push(format!("hint \"{s}\" is not understood and is ignored"));
            return;
        };
        let Some(close) = s[open..].find(')').map(|c| open + c) else {
            problems.push(format!("hint \"{s}\" is not closed and is ignored"));
            return;
        };
        let name = s[..open].trim();
        let args: Vec<&str> = s[open + 1..close]
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|a| !a.is_empty())
            .collect();
        if !name.eq_ignore_ascii_case("engine") {
            problems.push(format!(
                "hint \"{name}\" is not known and is ignored (DuetDB knows engine(row|column|auto [table ...]))"
            ));
        } else {
            match args.split_first() {
                Some((engine, tables)) => match Engine::parse(&engine.to_ascii_lowercase()) {
                    Some(e) if tables.is_empty() => hints.all = Some(e),
                    Some(e) => {
                        for t in tables {
                            let t = t.trim_matches('"');
                            hints.tables.push((t.to_ascii_lowercase(), e));
                        }
                    }
                    None => problems.push(format!(
                        "hint engine({engine}) names no engine (row, column or auto) and is ignored"
                    )),
                },
                None => problems.push("hint engine() names no engine and is ignored".into()),
            }
        }
        s = s[close + 1..].trim_start_matches([',', ' ', '\t', '\n', '\r']);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_for_all_and_per_table() {
        let (h, p) = parse("SELECT /*+ engine(column) */ count(*) FROM t");
        assert!(p.is_empty());
        assert_eq!(h.all, Some(Engine::Column));
        let (h, p) = parse("select /*+ engine(row t1) engine(column t2, T3) */ 1");
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(h.for_table("t1"), Some(Engine::Row));
        assert_eq!(h.for_table("t3"), Some(Engine::Column));
        assert_eq!(h.for_table("t4"), None);
        // A plain comment is not a hint.
        let (h, p) = parse("select /* engine(column) */ 1");
        assert!(h.is_empty() && p.is_empty());
    }

    #[test]
    fn malformed_hints_become_notices() {
        let (h, p) = parse("select /*+ engine(fast) leading(a b) */ 1");
        assert!(h.is_empty());
        assert_eq!(p.len(), 2, "{p:?}");
        let (_, p) = parse("select /*+ engine(row */ 1");
        assert_eq!(p.len(), 1, "{p:?}");
    }
}
