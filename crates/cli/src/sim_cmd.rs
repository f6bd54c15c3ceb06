//! `gridmint sim CONFIG.toml`: the network simulator (crate `sim`) from the command line.

use anyhow::Context;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct SimArgs {
    /// The simulation's TOML file, e.g. sim/experiments/verification.toml
    pub config: PathBuf,
    /// Print the results as JSON on stdout instead of a table
    #[arg(long)]
    pub json: bool,
    /// Also write the results as JSON to this file (beside the table, from the same run)
    #[arg(long, value_name = "FILE")]
    pub json_file: Option<PathBuf>,
    /// Directory for the PNG plots [default: sim/out/NAME]
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Draw no plots
    #[arg(long)]
    pub no_plots: bool,
    /// Override the file's seed
    #[arg(long)]
    pub seed: Option<u64>,
    /// No progress bar
    #[arg(long)]
    pub quiet: bool,
}

pub fn run(args: SimArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("reading {}", args.config.display()))?;
    let mut cfg =
        sim::SimConfig::parse(&text).with_context(|| format!("in {}", args.config.display()))?;
    if let Some(seed) = args.seed {
        cfg.seed = seed;
    }
    let out_dir = (!args.no_plots).then(|| {
        args.out
            .clone()
            .unwrap_or_else(|| PathBuf::from("sim/out").join(&cfg.name))
    });
    let opts = sim::experiments::Options {
        out_dir,
        progress: !args.quiet,
    };
    let output = sim::run_config(&cfg, &opts)?;
    if let Some(path) = &args.json_file {
        std::fs::write(path, serde_json::to_string_pretty(&output.json)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&output.json)?);
    } else {
        print!("{}", output.table);
        for plot in &output.plots {
            println!("plot: {}", plot.display());
        }
    }
    Ok(())
}
