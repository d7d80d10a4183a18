//! `char(n)` comparisons with string literals.

use super::*;

/// Trailing spaces off string literals compared with `char(n)` columns.
#[derive(Debug, Default)]
pub struct BpcharLiterals;

fn is_bpchar(e: &Expr, schema: &datafusion::common::DFSchema) -> bool {
    match e {
        Expr::Column(_) => e
            .to_field(schema)
            .is_ok_and(|(_, f)| f.metadata().contains_key(duet_common::batch::BPCHAR_WIDTH)),
        _ => false,
    }
}

fn trim_literal(e: Expr) -> Expr {
    match e {
        Expr::Literal(ScalarValue::Utf8(Some(s)), m) => Expr::Literal(
            ScalarValue::Utf8(Some(s.trim_end_matches(' ').to_string())),
            m,
        ),
        Expr::Literal(ScalarValue::Utf8View(Some(s)), m) => Expr::Literal(
            ScalarValue::Utf8View(Some(s.trim_end_matches(' ').to_string())),
            m,
        ),
        other => other,
    }
}

impl AnalyzerRule for BpcharLiterals {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        retype_expressions(plan, |e, schema| {
            {
                e.transform_up(|e| match e {
                    Expr::BinaryExpr(BinaryExpr { left, op, right })
                        if is_comparison(&op)
                            || matches!(
                                op,
                                Operator::IsDistinctFrom | Operator::IsNotDistinctFrom
                            ) =>
                    {
                        if is_bpchar(&left, schema) {
                            Ok(Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(
                                left,
                                op,
                                Box::new(trim_literal(*right)),
                            ))))
                        } else if is_bpchar(&right, schema) {
                            Ok(Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(
                                Box::new(trim_literal(*left)),
                                op,
                                right,
                            ))))
                        } else {
                            Ok(Transformed::no(Expr::BinaryExpr(BinaryExpr {
                                left,
                                op,
                                right,
                            })))
                        }
                    }
                    Expr::InList(mut l) if is_bpchar(&l.expr, schema) => {
                        l.list = l.list.into_iter().map(trim_literal).collect();
                        Ok(Transformed::yes(Expr::InList(l)))
                    }
                    other => Ok(Transformed::no(other)),
                })
            }
        })
    }

    fn name(&self) -> &str {
        "duet_bpchar_literals"
    }
}
