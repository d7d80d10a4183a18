//! A partitioned TopK sorts by the whole key of the merge above it.
//!
//! DataFusion's `EnforceSorting` drops from a per-partition `SortExec` every sort key that
//! is constant within each partition, which is right for the sort itself: under a
//! `UnionExec` whose branches select `true` and `false`, every partition holds one of the
//! two. But every partition of a `SortExec` with a fetch (a TopK) shares one dynamic filter
//! built from that shortened key: once the `true` partition holds its limit of rows, the
//! filter `c0 < -1` throws away the `false` partition's `(false, 2)`, which sorts first by
//! the whole key. Sorting each partition by the merge's key is always correct, and the
//! shared filter then compares whole keys.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::Result;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::execution_plan::replace_children_if_necessary;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::ExecutionPlan;

#[derive(Debug, Default)]
pub struct PartitionedTopKKeys;

impl PhysicalOptimizerRule for PartitionedTopKKeys {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(merge) = node.downcast_ref::<SortPreservingMergeExec>() else {
                return Ok(Transformed::no(node));
            };
            let Some(sort) = merge.input().downcast_ref::<SortExec>() else {
                return Ok(Transformed::no(node));
            };
            if sort.fetch().is_none()
                || !sort.preserve_partitioning()
                || sort.expr() == merge.expr()
            {
                return Ok(Transformed::no(node));
            }
            let whole = SortExec::new(merge.expr().clone(), Arc::clone(sort.input()))
                .with_preserve_partitioning(true)
                .with_fetch(sort.fetch());
            let node = replace_children_if_necessary(Arc::clone(&node), vec![Arc::new(whole)])?;
            Ok(Transformed::yes(node))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "duet_partitioned_topk_keys"
    }

    fn schema_check(&self) -> bool {
        true
    }
}
