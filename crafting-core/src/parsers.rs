//! The ParserRegistry actor: language -> parser table from `crafting-parsers`,
//! with parsing run on a blocking thread and a parser panic contained. A
//! job's log is parsed while its recipe runs, following the file as it
//! grows, so that findings are ready soon after the recipe ends.

use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;
use std::sync::Arc;

use actix::prelude::*;
use crafting_parsers::{Finding, ParseContext, Registry};

use crate::process::{FollowLog, LogProgress};

/// Owns the parser table.
pub struct ParserRegistry {
    registry: Arc<Registry>,
}

impl ParserRegistry {
    /// Wraps a registry.
    pub fn new(registry: Registry) -> Self {
        ParserRegistry { registry: Arc::new(registry) }
    }
}

impl Actor for ParserRegistry {
    type Context = Context<Self>;
}

impl Supervised for ParserRegistry {}

/// Sent by the runner once a recipe has started: parse its log, following
/// it until `progress` says it is complete. Replies with what the parsers
/// found, without the generic `recipe_fail` fallback: the exit code is not
/// known while the log is read (`ctx.exit_code` is `None`), so the runner
/// adds the fallback itself.
#[derive(Message)]
#[rtype(result = "Result<Vec<Finding>, String>")]
pub struct Parse {
    /// What the parsers need to know about the job.
    pub ctx: ParseContext,
    /// The log file.
    pub log_path: PathBuf,
    /// How far the log has been written.
    pub progress: Arc<LogProgress>,
}

impl Handler<Parse> for ParserRegistry {
    type Result = ResponseFuture<Result<Vec<Finding>, String>>;

    fn handle(&mut self, m: Parse, _: &mut Context<Self>) -> Self::Result {
        let registry = self.registry.clone();
        Box::pin(async move {
            let work = tokio::task::spawn_blocking(move || {
                let file = File::open(&m.log_path)
                    .map_err(|e| format!("opening log {}: {e}", m.log_path.display()))?;
                let log = FollowLog::new(file, m.progress);
                let mut reader = BufReader::with_capacity(256 * 1024, log);
                Ok(registry.findings(&m.ctx, &mut reader))
            });
            match work.await {
                Ok(result) => result,
                Err(e) if e.is_panic() => Err("a findings parser panicked".to_owned()),
                Err(e) => Err(format!("parser worker failed: {e}")),
            }
        })
    }
}
