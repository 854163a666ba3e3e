//! `audit --config FILE [--json]`: the mail set-up checked once, one row per check.

use super::{CliError, ConfigArg, print_json, table};
use crate::{
    allowlist::store::Store,
    audit::{self, AuditInputs},
    paths::StateLayout,
};

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Print a JSON array of {"check", "target", "result", "detail"} instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn audit(args: &AuditArgs) -> Result<(), CliError> {
    let path = &args.config.config;
    let config = crate::config::load(path).map_err(|err| CliError::Invalid(err.to_string()))?;
    let store = Store::load(&StateLayout::new(&config.state_dir))
        .map_err(|err| CliError::Invalid(err.to_string()))?;
    let inputs = AuditInputs::from_config(&config, path, store.entries())
        .map_err(|err| CliError::Invalid(err.to_string()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| CliError::Failed(format!("cannot start the runtime: {err}")))?;
    let report = runtime
        .block_on(audit::run(&inputs))
        .map_err(|err| CliError::Invalid(err.to_string()))?;
    if args.json {
        print_json(&report.rows)?;
    } else {
        let rows: Vec<Vec<String>> = report
            .rows
            .iter()
            .map(|row| {
                vec![
                    row.check.clone(),
                    row.target.clone(),
                    row.result.as_str().to_owned(),
                    row.detail.clone(),
                ]
            })
            .collect();
        println!(
            "{}",
            table::render(&["CHECK", "TARGET", "RESULT", "DETAIL"], &rows)
        );
    }
    let failed = report
        .rows
        .iter()
        .filter(|row| row.result == audit::Outcome::Fail)
        .count();
    if failed > 0 {
        return Err(CliError::Failed(format!(
            "audit: {failed} of {} checks failed",
            report.rows.len()
        )));
    }
    Ok(())
}
