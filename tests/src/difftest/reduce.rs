//! Smaller versions of a query, for shrinking a failing case: whole clauses dropped first,
//! then each expression replaced by one of its parts or a constant. Many candidates are
//! invalid SQL; the shrinker keeps only those that still fail the same way.

use super::ast::{Body, Expr, From, OrderKey, Query, Select};

impl Expr {
    /// The expressions directly inside this one (not inside its subqueries).
    pub(super) fn children_mut(&mut self) -> Vec<&mut Expr> {
        match self {
            Expr::Col(_) | Expr::Lit(_) | Expr::Null(_) => Vec::new(),
            Expr::Prefix(_, e) | Expr::Postfix(e, _) | Expr::Cast(e, _) => vec![e.as_mut()],
            Expr::Binary(l, _, r) => vec![l.as_mut(), r.as_mut()],
            Expr::Func(_, args) => args.iter_mut().collect(),
            Expr::Case(arms, otherwise) => {
                let mut v: Vec<&mut Expr> = Vec::new();
                for (w, t) in arms.iter_mut() {
                    v.push(w);
                    v.push(t);
                }
                v.extend(otherwise.as_deref_mut());
                v
            }
            Expr::Between { e, lo, hi, .. } => vec![e.as_mut(), lo.as_mut(), hi.as_mut()],
            Expr::InList { e, list, .. } => {
                let mut v = vec![e.as_mut()];
                v.extend(list.iter_mut());
                v
            }
            Expr::Like { e, pattern, .. } => vec![e.as_mut(), pattern.as_mut()],
            Expr::Agg { args, filter, .. } => {
                let mut v: Vec<&mut Expr> = args.iter_mut().collect();
                v.extend(filter.as_deref_mut());
                v
            }
            Expr::Window {
                func,
                partition,
                order,
            } => {
                let mut v = vec![func.as_mut()];
                v.extend(partition.iter_mut());
                for o in order.iter_mut() {
                    if let OrderKey::Expr(e) = &mut o.key {
                        v.push(e);
                    }
                }
                v
            }
            Expr::Subquery(_) | Expr::Exists { .. } => Vec::new(),
            Expr::InSubquery { e, .. } | Expr::Quantified { e, .. } => vec![e.as_mut()],
        }
    }

    fn query_mut(&mut self) -> Option<&mut Query> {
        match self {
            Expr::Subquery(q)
            | Expr::Exists { query: q, .. }
            | Expr::InSubquery { query: q, .. }
            | Expr::Quantified { query: q, .. } => Some(q),
            _ => None,
        }
    }

    fn child_count(&self) -> usize {
        self.clone().children_mut().len()
    }
}

/// Replacements for `e`: its parts, constants, then the same with one part reduced.
pub fn expr(e: &Expr) -> Vec<Expr> {
    let mut out: Vec<Expr> = Vec::new();
    let mut copy = e.clone();
    for c in copy.children_mut() {
        out.push(c.clone());
    }
    if !matches!(e, Expr::Lit(_) | Expr::Null(_)) {
        out.push(Expr::Lit("NULL".into()));
        out.push(Expr::Lit("1".into()));
        out.push(Expr::Lit("true".into()));
    }
    // Some list shapes shrink by dropping one element.
    match e {
        Expr::InList { list, .. } if list.len() > 1 => {
            for i in 0..list.len() {
                let mut x = e.clone();
                if let Expr::InList { list, .. } = &mut x {
                    list.remove(i);
                }
                out.push(x);
            }
        }
        Expr::Case(arms, otherwise) => {
            if otherwise.is_some() {
                let mut x = e.clone();
                if let Expr::Case(_, o) = &mut x {
                    *o = None;
                }
                out.push(x);
            }
            if arms.len() > 1 {
                for i in 0..arms.len() {
                    let mut x = e.clone();
                    if let Expr::Case(a, _) = &mut x {
                        a.remove(i);
                    }
                    out.push(x);
                }
            }
        }
        Expr::Agg {
            filter: Some(_), ..
        } => {
            let mut x = e.clone();
            if let Expr::Agg { filter, .. } = &mut x {
                *filter = None;
            }
            out.push(x);
        }
        Expr::Agg { distinct: true, .. } => {
            let mut x = e.clone();
            if let Expr::Agg { distinct, .. } = &mut x {
                *distinct = false;
            }
            out.push(x);
        }
        _ => {}
    }
    for i in 0..e.child_count() {
        let child = e.clone().children_mut()[i].clone();
        for c in expr(&child) {
            let mut x = e.clone();
            *x.children_mut()[i] = c;
            out.push(x);
        }
    }
    if let Some(q) = e.clone().query_mut() {
        for c in query(q) {
            let mut x = e.clone();
            *x.query_mut().unwrap() = c;
            out.push(x);
        }
    }
    out
}

/// Smaller versions of a query.
pub fn query(q: &Query) -> Vec<Query> {
    let mut out = Vec::new();
    let with = |f: &dyn Fn(&mut Query)| {
        let mut x = q.clone();
        f(&mut x);
        x
    };
    if !q.with.is_empty() {
        out.push(with(&|x| x.with.clear()));
    }
    // Without its ORDER BY, a LIMIT or OFFSET keeps whichever rows each side meets
    // first: both answers would be right, so such a candidate proves nothing.
    if !q.order_by.is_empty() && q.limit.is_none() && q.offset.is_none() {
        out.push(with(&|x| x.order_by.clear()));
    }
    if q.limit.is_some() {
        out.push(with(&|x| x.limit = None));
    }
    if q.offset.is_some() {
        out.push(with(&|x| x.offset = None));
    }
    for b in body(&q.body) {
        let mut x = q.clone();
        x.body = b;
        out.push(x);
    }
    for (i, (_, cte)) in q.with.iter().enumerate() {
        for c in query(cte) {
            let mut x = q.clone();
            x.with[i].1 = c;
            out.push(x);
        }
    }
    out
}

fn body(b: &Body) -> Vec<Body> {
    match b {
        Body::Select(s) => select(s)
            .into_iter()
            .map(|s| Body::Select(Box::new(s)))
            .collect(),
        Body::SetOp {
            left,
            op,
            all,
            right,
        } => {
            let mut out = vec![(**left).clone(), (**right).clone()];
            for l in body(left) {
                out.push(Body::SetOp {
                    left: Box::new(l),
                    op,
                    all: *all,
                    right: right.clone(),
                });
            }
            for r in body(right) {
                out.push(Body::SetOp {
                    left: left.clone(),
                    op,
                    all: *all,
                    right: Box::new(r),
                });
            }
            out
        }
        Body::Values(rows) if rows.len() > 1 => (0..rows.len())
            .map(|i| {
                let mut r = rows.clone();
                r.remove(i);
                Body::Values(r)
            })
            .collect(),
        Body::Values(_) => Vec::new(),
    }
}

fn select(s: &Select) -> Vec<Select> {
    let mut out = Vec::new();
    let with = |f: &dyn Fn(&mut Select)| {
        let mut x = s.clone();
        f(&mut x);
        x
    };
    if s.filter.is_some() {
        out.push(with(&|x| x.filter = None));
    }
    if s.having.is_some() {
        out.push(with(&|x| x.having = None));
    }
    if s.distinct {
        out.push(with(&|x| x.distinct = false));
    }
    if s.items.len() > 1 {
        for i in 0..s.items.len() {
            out.push(with(&|x| {
                x.items.remove(i);
            }));
        }
    }
    for (i, f) in s.from.iter().enumerate() {
        if s.from.len() > 1 {
            out.push(with(&|x| {
                x.from.remove(i);
            }));
        }
        for c in from(f) {
            let mut x = s.clone();
            x.from[i] = c;
            out.push(x);
        }
    }
    for i in 0..s.group_by.len() {
        out.push(with(&|x| {
            x.group_by.remove(i);
        }));
    }
    for (i, (e, _)) in s.items.iter().enumerate() {
        for c in expr(e) {
            let mut x = s.clone();
            x.items[i].0 = c;
            out.push(x);
        }
    }
    if let Some(p) = &s.filter {
        for c in expr(p) {
            let mut x = s.clone();
            x.filter = Some(c);
            out.push(x);
        }
    }
    if let Some(p) = &s.having {
        for c in expr(p) {
            let mut x = s.clone();
            x.having = Some(c);
            out.push(x);
        }
    }
    out
}

fn from(f: &From) -> Vec<From> {
    match f {
        From::Table { .. } => Vec::new(),
        From::Derived {
            query: q,
            alias,
            columns,
        } => query(q)
            .into_iter()
            .map(|q| From::Derived {
                query: Box::new(q),
                alias: alias.clone(),
                columns: columns.clone(),
            })
            .collect(),
        From::Join {
            left,
            kind,
            right,
            on,
        } => {
            let mut out = vec![(**left).clone(), (**right).clone()];
            let join = |l: &From, k: &'static str, r: &From, on: Option<Expr>| From::Join {
                left: Box::new(l.clone()),
                kind: k,
                right: Box::new(r.clone()),
                on,
            };
            if *kind != "JOIN" && *kind != "CROSS JOIN" {
                out.push(join(left, "JOIN", right, on.clone()));
            }
            if let Some(p) = on {
                for c in expr(p) {
                    out.push(join(left, kind, right, Some(c)));
                }
            }
            for l in from(left) {
                out.push(join(&l, kind, right, on.clone()));
            }
            for r in from(right) {
                out.push(join(left, kind, &r, on.clone()));
            }
            out
        }
    }
}
