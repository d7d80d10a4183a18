//! Rows a statement already holds (RETURNING's written rows, ON CONFLICT's stored and
//! proposed rows) as a table a query can read, with the display scales of their
//! unconstrained `numeric` values ([`duet_common::numeric`]) kept as companions the
//! display-scale pass asks for, as it does of a stored table's (see
//! `pgsemantics::dscale`): hidden from the schema, so `*` does not list them.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::{MemTable, TableType};
use datafusion::error::Result;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use duet_common::numeric::{COMPANION_BASE, SUFFIX};
use duet_common::{Row, TableDef};

/// In-memory rows whose companions (fields named with [`SUFFIX`], after every value
/// field) are in the schema only once [`ScaledRows::with_companions`] asks for them.
#[derive(Debug)]
pub struct ScaledRows {
    rows: Arc<MemTable>,
    visible: SchemaRef,
    companions: bool,
}

impl ScaledRows {
    /// The rows of `batch`, whose companion fields must come after all the others.
    pub fn new(batch: RecordBatch) -> Result<Self> {
        let full = batch.schema();
        let width = full
            .fields()
            .iter()
            .take_while(|f| !f.name().ends_with(SUFFIX))
            .count();
        let visible = Arc::new(Schema::new(full.fields()[..width].to_vec()));
        Ok(Self {
            rows: Arc::new(MemTable::try_new(full, vec![vec![batch]])?),
            visible,
            companions: false,
        })
    }

    /// These rows with the companions in the schema; `None` when they have none.
    pub fn with_companions(&self) -> Option<Self> {
        let wider = self.rows.schema().fields().len() > self.visible.fields().len();
        (wider && !self.companions).then(|| Self {
            rows: self.rows.clone(),
            visible: self.visible.clone(),
            companions: true,
        })
    }
}

/// The positions of `def`'s columns and then of its companions, for
/// `batch::rows_to_batch`: the rows of `def` as [`ScaledRows`] holds them.
pub fn positions_with_companions(def: &TableDef) -> Vec<usize> {
    let mut all: Vec<usize> = (0..def.columns.len()).collect();
    all.extend(def.scaled_columns().iter().map(|c| COMPANION_BASE + c));
    all
}

/// `rows` of `def` as a batch of its columns and then their companions.
pub fn batch_with_companions(def: &TableDef, rows: &[Row]) -> duet_common::Result<RecordBatch> {
    duet_common::batch::rows_to_batch(def, &positions_with_companions(def), rows)
}

#[async_trait]
impl TableProvider for ScaledRows {
    fn schema(&self) -> SchemaRef {
        if self.companions {
            self.rows.schema()
        } else {
            self.visible.clone()
        }
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // The visible fields lead the full schema, so positions are the same in both.
        let all: Vec<usize> = (0..self.schema().fields().len()).collect();
        let projection = projection.cloned().unwrap_or(all);
        self.rows
            .scan(state, Some(&projection), filters, limit)
            .await
    }
}
