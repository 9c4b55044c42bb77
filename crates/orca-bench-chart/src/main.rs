//! `orca-bench-chart RUN.json [--out FILE.png]`: the chart of one `scripts/bench-peers` run,
//! throughput and peak memory of each tool at each step, with the machine's limits measured
//! in the same run as reference lines. The README shows the chart of the latest run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Parser;
use plotters::prelude::*;
use plotters::style::FontStyle;
use serde::Deserialize;

/// Draw the PNG chart of a scripts/bench-peers run.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// The run's JSON (docs/bench/peers-<date>.json).
    run: PathBuf,
    /// Where the PNG goes: beside the JSON, same name, by default.
    #[arg(long)]
    out: Option<PathBuf>,
    /// A TrueType font for the labels (the chart needs one; Debian's fonts-dejavu-core
    /// installs the default).
    #[arg(
        long,
        default_value = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
    )]
    font: PathBuf,
}

/// The part of the run's JSON the chart reads (scripts/bench-peers writes it).
#[derive(Deserialize)]
struct Run {
    date: String,
    database_mb: u64,
    orca_build: String,
    machine: Machine,
    limits: BTreeMap<String, Figure>,
    tools: BTreeMap<String, BTreeMap<String, Figure>>,
    /// Issue 22's targets as the script judged them (absent from runs before it did).
    #[serde(default)]
    targets: Vec<Target>,
}

#[derive(Deserialize)]
struct Target {
    /// None when a figure it needs is missing (a peer not installed).
    pass: Option<bool>,
}

#[derive(Deserialize)]
struct Machine {
    cpus: u32,
    cpu: Option<String>,
}

#[derive(Deserialize)]
struct Figure {
    mb_per_s: f64,
    #[serde(default)]
    peak_rss_mib: Option<f64>,
}

/// The steps, in the order a user meets them, with their labels.
const STEPS: [(&str, &str); 4] = [
    ("full", "first full"),
    ("repeat", "unchanged repeat"),
    ("changed", "after 1% change"),
    ("restore", "restore + sync"),
];

/// The tools, in the chart's order, with their labels and colours.
const TOOLS: [(&str, &str, RGBColor); 4] = [
    ("orca_sbt", "ORCA (RMAN via SBT)", RGBColor(0, 90, 160)),
    ("orca_put", "ORCA (orca put)", RGBColor(90, 160, 220)),
    ("restic", "restic", RGBColor(200, 120, 30)),
    ("borg", "borg", RGBColor(90, 150, 60)),
];

fn main() -> Result<()> {
    let a = Args::parse();
    let run: Run = serde_json::from_slice(
        &std::fs::read(&a.run).with_context(|| format!("cannot read {}", a.run.display()))?,
    )
    .with_context(|| format!("{} is not the JSON of a bench-peers run", a.run.display()))?;
    let font = std::fs::read(&a.font).with_context(|| {
        format!(
            "cannot read the font {} (install fonts-dejavu-core, or give --font)",
            a.font.display()
        )
    })?;
    // plotters keeps the fonts it is given for the life of the process.
    plotters::style::register_font("sans-serif", FontStyle::Normal, font.leak())
        .map_err(|_| anyhow::anyhow!("{} is not a TrueType font", a.font.display()))?;
    let out = a.out.unwrap_or_else(|| a.run.with_extension("png"));
    draw(&run, &out)?;
    println!("wrote {}", out.display());
    Ok(())
}

fn draw(run: &Run, out: &Path) -> Result<()> {
    let tools: Vec<_> = TOOLS
        .iter()
        .filter(|(key, ..)| run.tools.contains_key(*key))
        .collect();
    if tools.is_empty() {
        bail!("the run holds no figures of ORCA, restic or borg");
    }
    let root = BitMapBackend::new(out, (1400, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut title = format!(
        "{} MiB simulated Oracle database, {} CPUs ({}), ORCA {} build, {}",
        run.database_mb,
        run.machine.cpus,
        run.machine.cpu.as_deref().unwrap_or("?"),
        run.orca_build,
        run.date
    );
    let judged: Vec<bool> = run.targets.iter().filter_map(|t| t.pass).collect();
    if !judged.is_empty() {
        let met = judged.iter().filter(|&&p| p).count();
        title += &format!("; issue 22 targets met: {met} of {}", judged.len());
    }
    let root = root.titled(&title, ("sans-serif", 20))?;
    let (left, right) = root.split_horizontally(840);
    let limits: Vec<(String, f64)> = [
        ("zstd_1_T2", "zstd -1 -T2"),
        ("zstd_d", "zstd -d"),
        ("write_fsync", "write + fsync"),
    ]
    .iter()
    .filter_map(|(k, label)| run.limits.get(*k).map(|f| (label.to_string(), f.mb_per_s)))
    .collect();
    panel(
        &left,
        run,
        &tools,
        "MB/s (higher is better); dashed: the machine's limits",
        |f| Some(f.mb_per_s),
        &limits,
    )?;
    panel(
        &right,
        run,
        &tools,
        "peak RSS, MiB (lower is better)",
        |f| f.peak_rss_mib,
        &[],
    )?;
    root.present()
        .with_context(|| format!("cannot write {}", out.display()))?;
    Ok(())
}

/// One grouped bar chart: a group per step, a bar per tool, `value` of each figure.
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    run: &Run,
    tools: &[&(&str, &str, RGBColor)],
    caption: &str,
    value: impl Fn(&Figure) -> Option<f64>,
    limits: &[(String, f64)],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let at = |tool: &str, step: &str| run.tools.get(tool)?.get(step).and_then(&value);
    let top = tools
        .iter()
        .flat_map(|(t, ..)| STEPS.iter().filter_map(|(s, _)| at(t, s)))
        .chain(limits.iter().map(|(_, v)| *v))
        .fold(1.0, f64::max)
        // Room above the tallest bar for the legend.
        * 1.4;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..STEPS.len() as f64, 0.0..top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(STEPS.len() * 2 + 1)
        // A step's name under the middle of its group, nothing at the group edges.
        .x_label_formatter(&|x| {
            STEPS
                .iter()
                .zip(0..)
                .find(|(_, i)| (x - (f64::from(*i) + 0.5)).abs() < 0.01)
                .map(|((_, label), _)| label.to_string())
                .unwrap_or_default()
        })
        .y_label_formatter(&|y| format!("{y:.0}"))
        .label_style(("sans-serif", 13))
        .draw()?;
    let width = 0.8 / tools.len() as f64;
    for (n, (key, label, colour)) in tools.iter().enumerate() {
        let bars = STEPS.iter().enumerate().filter_map(|(i, (step, _))| {
            let v = at(key, step)?;
            let x0 = i as f64 + 0.1 + n as f64 * width;
            Some(Rectangle::new(
                [(x0, 0.0), (x0 + width * 0.9, v)],
                colour.filled(),
            ))
        });
        let colour = *colour;
        chart
            .draw_series(bars)?
            .label(*label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 12, y + 6)], colour.filled()));
    }
    // Labels side by side along their lines: limits are often close to each other.
    for (i, (label, v)) in limits.iter().enumerate() {
        let line = DashedLineSeries::new(
            [(0.0, *v), (STEPS.len() as f64, *v)],
            6,
            4,
            BLACK.mix(0.6).stroke_width(1),
        );
        chart.draw_series(line)?;
        chart.draw_series(std::iter::once(Text::new(
            format!("{label} {v:.0}"),
            (1.0 + 1.0 * i as f64, *v + top * 0.03),
            ("sans-serif", 12),
        )))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 13))
        .draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed run draws as a PNG of the chart's size, and a JSON that is not a run
    /// is refused by name.
    #[test]
    fn the_committed_run_draws_and_a_wrong_json_is_refused() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/bench");
        let json = docs.join("peers-2026-12-06.json");
        let run: Run = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        let font = std::fs::read(Args::parse_from(["c", "x"]).font)
            .expect("DejaVu Sans is missing: scripts/test-deps installs fonts-dejavu-core");
        plotters::style::register_font("sans-serif", FontStyle::Normal, font.leak()).ok();
        let dir = std::env::temp_dir().join(format!("orca-chart-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("chart.png");
        draw(&run, &out).unwrap();
        let png = std::fs::read(&out).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let (w, h) = (
            u32::from_be_bytes(png[16..20].try_into().unwrap()),
            u32::from_be_bytes(png[20..24].try_into().unwrap()),
        );
        assert_eq!((w, h), (1400, 560));

        let empty: Run = serde_json::from_value(serde_json::json!({
            "date": "d", "database_mb": 1, "orca_build": "b",
            "machine": {"cpus": 1, "cpu": null}, "limits": {}, "tools": {}
        }))
        .unwrap();
        let e = draw(&empty, &out).unwrap_err().to_string();
        assert!(e.contains("no figures of ORCA, restic or borg"), "{e}");
        assert!(serde_json::from_str::<Run>("{\"date\": 1}").is_err());
    }
}
