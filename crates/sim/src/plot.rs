//! PNG charts for the network simulator (`gridmint sim`).
//!
//! The simulator reports its results as pictures as well as numbers: utilization
//! over virtual time, cumulative earnings per provider class, wrong-result rate
//! against the saboteur fraction ([`line_chart`]), the distribution of earnings
//! per provider ([`histogram`]) and makespan per scheduling heuristic per
//! instance ([`grouped_bars`]). Every chart is a 1000×600 PNG on a white
//! background with a title, axis labels and, when it shows more than one
//! series, a legend in a panel to the right of the plot so that it never hides
//! data.
//!
//! # Why the font is embedded
//!
//! `plotters` normally finds its fonts through fontconfig and renders them with
//! freetype (its `ttf` feature, via `font-kit`). CI machines have neither, nor
//! any system font, so this module uses `plotters` without default features:
//! the pure-Rust bitmap backend, and text rendered by the pure-Rust `ab_glyph`
//! rasterizer from Noto Sans Regular, whose bytes are compiled into the binary
//! (crate `ttf-noto-sans`, Apache-2.0). The font is registered with `plotters`
//! once per process, on first use. The image is encoded to PNG by the pure-Rust
//! `image` crate, whatever the extension of the output path.
//!
//! Drawing never panics on awkward data: empty series, single points, all-equal
//! values and non-finite values (which are skipped) all give a chart; failures
//! to draw or write are reported as [`PlotError`].

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::backend::RGBPixel;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{FontFamily, FontStyle, RGBColor, register_font};

/// Width of every chart, in pixels.
pub const WIDTH: u32 = 1000;
/// Height of every chart, in pixels.
pub const HEIGHT: u32 = 600;

/// Most bins a histogram draws; larger requests are clamped to this.
pub const MAX_BINS: usize = 1000;

/// The family every text element uses; the embedded font is registered under
/// this name, which is also the family `plotters` picks by default.
const FONT: FontFamily<'static> = FontFamily::SansSerif;

/// Series with at most this many points get a marker on every point, so that
/// short series (and single points) stay visible.
const MARKER_LIMIT: usize = 40;

/// Longest legend or category label, in characters, before it is shortened.
const MAX_LABEL_CHARS: usize = 32;

/// Colour of the major grid lines.
const BOLD_GRID: RGBColor = RGBColor(205, 205, 205);
/// Colour of the minor grid lines.
const LIGHT_GRID: RGBColor = RGBColor(240, 240, 240);

/// Colours of successive series (the "Tableau 10" palette: distinguishable on
/// white and reasonably friendly to colour-blind readers).
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// One line on a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Name shown in the legend.
    pub name: String,
    /// `(x, y)` points, drawn in the given order; non-finite points are skipped.
    pub points: Vec<(f64, f64)>,
    /// Draw the line dashed rather than solid.
    pub dashed: bool,
}

/// Why a chart could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The embedded font could not be registered with `plotters`.
    #[error("cannot load the embedded plot font: {0}")]
    Font(String),
    /// `plotters` failed while drawing the chart.
    #[error("cannot draw plot {}: {message}", path.display())]
    Draw {
        /// The file the chart was meant for.
        path: PathBuf,
        /// What `plotters` reported.
        message: String,
    },
    /// The finished image could not be encoded or written.
    #[error("cannot write plot {}: {message}", path.display())]
    Write {
        /// The file that could not be written.
        path: PathBuf,
        /// What the encoder or the file system reported.
        message: String,
    },
}

/// A line chart, e.g. utilization % over virtual time in seconds, cumulative
/// earnings per provider class over time, or wrong-result rate against the
/// saboteur fraction.
///
/// The x range spans the data; the y range starts at 0 (or below, for negative
/// data) and leaves some headroom above the largest value. Dashed series are
/// drawn dashed; series with few points get a marker on every point, so a
/// single point is visible. A legend is drawn when there is more than one
/// series. Empty input gives empty axes marked "no data".
///
/// # Errors
///
/// [`PlotError`] when the font cannot be loaded, drawing fails, or the PNG
/// cannot be written to `path` (e.g. its directory does not exist).
pub fn line_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> Result<(), PlotError> {
    render(path, |root| {
        draw_line_chart(root, title, x_label, y_label, series)
    })
}

/// The distribution of per-provider values (e.g. earnings per provider), one
/// colour per group (e.g. provider class), as a histogram.
///
/// All groups share `bins` equal bins over the common range of their values
/// (`bins` is clamped to `1..=MAX_BINS`); within a bin the groups' bars stand
/// side by side. The y axis counts values (providers). The legend, drawn when
/// there is more than one group, gives each group's number of values. Empty
/// groups, all-equal values and non-finite values (skipped) are fine.
///
/// # Errors
///
/// As for [`line_chart`].
pub fn histogram(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    groups: &[(String, Vec<f64>)],
    bins: usize,
) -> Result<(), PlotError> {
    render(path, |root| {
        draw_histogram(root, title, x_label, y_label, groups, bins)
    })
}

/// A bar chart of values grouped by category, e.g. makespan per heuristic
/// (series) per instance (category).
///
/// Categories are laid out along x; within each, every series has one bar in
/// its colour, and `series[j].1[i]` is the value of series `j` in category
/// `i` (missing or non-finite values leave a gap). Values are written above
/// the bars when they fit. A legend is drawn when there is more than one
/// series. Empty input gives empty axes marked "no data".
///
/// # Errors
///
/// As for [`line_chart`].
pub fn grouped_bars(
    path: &Path,
    title: &str,
    y_label: &str,
    categories: &[String],
    series: &[(String, Vec<f64>)],
) -> Result<(), PlotError> {
    render(path, |root| {
        draw_grouped_bars(root, title, y_label, categories, series)
    })
}

/// The drawing surface every chart is drawn on.
type Area<'a> = DrawingArea<BitMapBackend<'a, RGBPixel>, Shift>;

/// Registers the embedded font with `plotters`, once per process.
///
/// It is registered under the generic family names too, so that text drawn
/// with a `plotters` default family (serif, monospace) also finds a font
/// instead of failing.
fn ensure_font() -> Result<(), PlotError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let registered = *REGISTERED.get_or_init(|| {
        [FONT, FontFamily::Serif, FontFamily::Monospace]
            .iter()
            .all(|family| {
                register_font(family.as_str(), FontStyle::Normal, ttf_noto_sans::REGULAR).is_ok()
            })
    });
    if registered {
        Ok(())
    } else {
        Err(PlotError::Font(
            "the embedded Noto Sans font is not a valid font".to_owned(),
        ))
    }
}

/// Draws a chart into an in-memory RGB buffer with `draw` and writes it to
/// `path` as a PNG.
fn render(
    path: &Path,
    draw: impl FnOnce(&Area<'_>) -> Result<(), String>,
) -> Result<(), PlotError> {
    ensure_font()?;
    let draw_error = |message: String| PlotError::Draw {
        path: path.to_path_buf(),
        message,
    };
    let mut buffer = vec![255u8; WIDTH as usize * HEIGHT as usize * 3];
    {
        let backend =
            BitMapBackend::<RGBPixel>::with_buffer_and_format(&mut buffer, (WIDTH, HEIGHT))
                .map_err(|e| draw_error(e.to_string()))?;
        let root = backend.into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw_error(e.to_string()))?;
        draw(&root).map_err(draw_error)?;
        root.present().map_err(|e| draw_error(e.to_string()))?;
    }
    image::save_buffer_with_format(
        path,
        &buffer,
        WIDTH,
        HEIGHT,
        image::ColorType::Rgb8,
        image::ImageFormat::Png,
    )
    .map_err(|e| PlotError::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Turns any `plotters` error into the message carried by [`PlotError`].
fn msg<E: Display>(error: E) -> String {
    error.to_string()
}

/// The colour of the `index`-th series.
fn colour(index: usize) -> RGBColor {
    PALETTE
        .get(index % PALETTE.len())
        .copied()
        .unwrap_or(RGBColor(0, 0, 0))
}

/// Style of chart titles.
fn title_style() -> TextStyle<'static> {
    (FONT, 28).into_font().color(&BLACK)
}

/// Style of tick labels and category names.
fn tick_style() -> TextStyle<'static> {
    (FONT, 16).into_font().color(&BLACK)
}

/// Style of axis descriptions.
fn axis_desc_style() -> TextStyle<'static> {
    (FONT, 19).into_font().color(&BLACK)
}

/// Style of legend labels.
fn legend_style() -> TextStyle<'static> {
    (FONT, 16).into_font().color(&BLACK)
}

/// Style of the values written on bars.
fn value_style() -> TextStyle<'static> {
    (FONT, 13).into_font().color(&RGBColor(60, 60, 60))
}

/// Whether a value can be placed on an axis: finite and far enough from the
/// limits of `f64` that ranges and paddings computed from it stay finite.
fn plottable(v: f64) -> bool {
    v.is_finite() && v.abs() < 1e300
}

/// The smallest and largest plottable value, if there is any.
fn bounds(values: impl IntoIterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .into_iter()
        .filter(|v| plottable(*v))
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
}

/// An axis range spanning the data exactly, widened around a single value and
/// `0..1` without data.
fn span_range(bounds: Option<(f64, f64)>) -> (f64, f64) {
    match bounds {
        None => (0.0, 1.0),
        Some((lo, hi)) if hi > lo => (lo, hi),
        Some((v, _)) => {
            let pad = if v == 0.0 { 0.5 } else { v.abs() * 0.05 };
            (v - pad, v + pad)
        }
    }
}

/// A value axis range: always includes 0, with headroom beyond the data on the
/// side(s) away from 0; `0..1` without data or when everything is 0.
fn value_range(bounds: Option<(f64, f64)>) -> (f64, f64) {
    let (lo, hi) = bounds.unwrap_or((0.0, 0.0));
    let (lo, hi) = (lo.min(0.0), hi.max(0.0));
    let span = hi - lo;
    if span <= 0.0 {
        return (0.0, 1.0);
    }
    let bottom = if lo < 0.0 { lo - 0.08 * span } else { 0.0 };
    let top = if hi > 0.0 { hi + 0.08 * span } else { 0.0 };
    (bottom, top)
}

/// How the tick labels of one numeric axis are written: values scaled to
/// thousands (`k`), millions (`M`) or billions (`G`) when large, with as many
/// decimals as the tick spacing needs and trailing zeros trimmed.
#[derive(Debug, Clone, Copy)]
struct TickFormat {
    /// Divisor applied before printing (1, 1e3, 1e6 or 1e9).
    scale: f64,
    /// Unit suffix matching `scale` ("", "k", "M" or "G").
    suffix: &'static str,
    /// Decimals printed before trailing zeros are trimmed.
    decimals: usize,
}

impl TickFormat {
    /// The format for an axis spanning `lo..hi`.
    fn for_range(lo: f64, hi: f64) -> Self {
        let magnitude = lo.abs().max(hi.abs());
        let (scale, suffix) = if magnitude >= 1e9 {
            (1e9, "G")
        } else if magnitude >= 1e6 {
            (1e6, "M")
        } else if magnitude >= 1e4 {
            (1e3, "k")
        } else {
            (1.0, "")
        };
        // plotters puts roughly ten ticks on an axis.
        let step = (hi - lo) / scale / 10.0;
        let decimals = if step.is_finite() && step > 0.0 {
            // At most 8; truncating the non-negative float is intended.
            (-step.log10().floor()).clamp(0.0, 7.0) as usize + 1
        } else {
            2
        };
        Self {
            scale,
            suffix,
            decimals,
        }
    }

    /// Writes one tick value.
    fn format(&self, v: f64) -> String {
        let text = format!("{:.*}", self.decimals, v / self.scale);
        let text = if text.contains('.') {
            text.trim_end_matches('0').trim_end_matches('.')
        } else {
            text.as_str()
        };
        if text == "0" || text == "-0" {
            "0".to_owned()
        } else {
            format!("{text}{}", self.suffix)
        }
    }
}

/// Shortens `label` to at most `max_chars` characters (but keeps at least
/// three), replacing its middle with "…" when cut, so that labels sharing a
/// prefix or a suffix stay distinguishable.
fn shorten(label: &str, max_chars: usize) -> String {
    let max_chars = max_chars.max(3);
    let count = label.chars().count();
    if count <= max_chars {
        return label.to_owned();
    }
    let keep = max_chars - 1;
    let head = keep.div_ceil(2);
    let tail = keep - head;
    let mut short: String = label.chars().take(head).collect();
    short.push('…');
    short.extend(label.chars().skip(count - tail));
    short
}

/// What a legend entry shows next to its label.
#[derive(Debug, Clone, Copy)]
enum Swatch {
    /// A line sample.
    Line {
        /// Dashed rather than solid.
        dashed: bool,
    },
    /// A filled box, as for bars.
    Block,
}

/// One row of a legend.
#[derive(Debug, Clone)]
struct LegendEntry {
    /// Text of the row.
    label: String,
    /// Colour of the swatch.
    colour: RGBColor,
    /// What the swatch looks like.
    swatch: Swatch,
}

/// Longest vertical category label of a bar chart, in pixels.
const MAX_VERTICAL_LABEL: u32 = 150;

/// Top of the legend box, in pixels from the top of the image: just below the
/// title, level with the top of the plot.
const LEGEND_TOP: i32 = 58;
/// Height of one legend row, in pixels.
const LEGEND_ROW: i32 = 26;
/// Horizontal space of a swatch plus the gaps around it, in pixels.
const LEGEND_SWATCH: i32 = 52;

/// Splits `root` into the plot area and, when there are legend entries, a
/// panel on the right wide enough for the longest label.
fn split_for_legend<'a>(
    root: &Area<'a>,
    entries: &[LegendEntry],
) -> Result<(Area<'a>, Option<Area<'a>>), String> {
    if entries.is_empty() {
        return Ok((root.clone(), None));
    }
    let style = legend_style();
    let mut widest = 0u32;
    for entry in entries {
        let (w, _) = root.estimate_text_size(&entry.label, &style).map_err(msg)?;
        widest = widest.max(w);
    }
    let panel = (widest + LEGEND_SWATCH as u32 + 24).clamp(140, 340);
    let (plot, legend) = root.split_horizontally(WIDTH.saturating_sub(panel));
    Ok((plot, Some(legend)))
}

/// Draws the legend box at the top of its panel.
fn draw_legend(area: &Area<'_>, entries: &[LegendEntry]) -> Result<(), String> {
    let (width, _) = area.dim_in_pixel();
    let right = i32::try_from(width).unwrap_or(i32::MAX).saturating_sub(14);
    let left = 4;
    let rows = i32::try_from(entries.len()).unwrap_or(i32::MAX);
    let bottom = LEGEND_TOP
        .saturating_add(rows.saturating_mul(LEGEND_ROW))
        .saturating_add(10);
    area.draw(&Rectangle::new(
        [(left, LEGEND_TOP), (right, bottom)],
        WHITE.filled(),
    ))
    .map_err(msg)?;
    area.draw(&Rectangle::new(
        [(left, LEGEND_TOP), (right, bottom)],
        RGBColor(170, 170, 170).stroke_width(1),
    ))
    .map_err(msg)?;
    let text_style = legend_style().pos(Pos::new(HPos::Left, VPos::Center));
    let mut y = LEGEND_TOP + 5 + LEGEND_ROW / 2;
    for entry in entries {
        let x = left + 10;
        match entry.swatch {
            Swatch::Line { dashed: false } => {
                area.draw(&PathElement::new(
                    vec![(x, y), (x + 32, y)],
                    entry.colour.stroke_width(3),
                ))
                .map_err(msg)?;
            }
            Swatch::Line { dashed: true } => {
                for start in [x, x + 13, x + 26] {
                    area.draw(&PathElement::new(
                        vec![(start, y), (start + 7, y)],
                        entry.colour.stroke_width(3),
                    ))
                    .map_err(msg)?;
                }
            }
            Swatch::Block => {
                area.draw(&Rectangle::new(
                    [(x + 4, y - 7), (x + 28, y + 7)],
                    entry.colour.filled(),
                ))
                .map_err(msg)?;
            }
        }
        area.draw(&Text::new(
            entry.label.clone(),
            (left + LEGEND_SWATCH, y),
            text_style.clone(),
        ))
        .map_err(msg)?;
        y = y.saturating_add(LEGEND_ROW);
    }
    Ok(())
}

/// Writes "no data" in the middle of a plotting area.
fn draw_no_data<DB: DrawingBackend, CT: CoordTranslate>(
    area: &DrawingArea<DB, CT>,
) -> Result<(), String> {
    let (w, h) = area.dim_in_pixel();
    let centre = (
        i32::try_from(w / 2).unwrap_or(0),
        i32::try_from(h / 2).unwrap_or(0),
    );
    area.strip_coord_spec()
        .draw(&Text::new(
            "no data",
            centre,
            axis_desc_style()
                .color(&RGBColor(120, 120, 120))
                .pos(Pos::new(HPos::Center, VPos::Center)),
        ))
        .map_err(msg)
}

/// Draws [`line_chart`] onto `root`.
fn draw_line_chart(
    root: &Area<'_>,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> Result<(), String> {
    let points: Vec<Vec<(f64, f64)>> = series
        .iter()
        .map(|s| {
            s.points
                .iter()
                .copied()
                .filter(|&(x, y)| plottable(x) && plottable(y))
                .collect()
        })
        .collect();
    let (x0, x1) = span_range(bounds(points.iter().flatten().map(|p| p.0)));
    let (y0, y1) = value_range(bounds(points.iter().flatten().map(|p| p.1)));

    let entries: Vec<LegendEntry> = if series.len() > 1 {
        series
            .iter()
            .enumerate()
            .map(|(i, s)| LegendEntry {
                label: shorten(&s.name, MAX_LABEL_CHARS),
                colour: colour(i),
                swatch: Swatch::Line { dashed: s.dashed },
            })
            .collect()
    } else {
        Vec::new()
    };
    let (plot_area, legend_area) = split_for_legend(root, &entries)?;

    let mut chart = ChartBuilder::on(&plot_area)
        .caption(title, title_style())
        .margin(14)
        .margin_right(26)
        .x_label_area_size(56)
        .y_label_area_size(78)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(msg)?;
    let x_format = TickFormat::for_range(x0, x1);
    let y_format = TickFormat::for_range(y0, y1);
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .x_labels(10)
        .y_labels(10)
        .x_label_formatter(&|v| x_format.format(*v))
        .y_label_formatter(&|v| y_format.format(*v))
        .label_style(tick_style())
        .axis_desc_style(axis_desc_style())
        .bold_line_style(BOLD_GRID)
        .light_line_style(LIGHT_GRID)
        .max_light_lines(4)
        .draw()
        .map_err(msg)?;

    for (i, (s, pts)) in series.iter().zip(&points).enumerate() {
        let c = colour(i);
        if s.dashed {
            chart
                .draw_series(DashedLineSeries::new(
                    pts.iter().copied(),
                    10,
                    6,
                    c.stroke_width(2),
                ))
                .map_err(msg)?;
        } else {
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))
                .map_err(msg)?;
        }
        if pts.len() <= MARKER_LIMIT {
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 4, c.filled())))
                .map_err(msg)?;
        }
    }
    if points.iter().all(Vec::is_empty) {
        draw_no_data(chart.plotting_area())?;
    }
    if let Some(area) = legend_area {
        draw_legend(&area, &entries)?;
    }
    Ok(())
}

/// Draws [`histogram`] onto `root`.
fn draw_histogram(
    root: &Area<'_>,
    title: &str,
    x_label: &str,
    y_label: &str,
    groups: &[(String, Vec<f64>)],
    bins: usize,
) -> Result<(), String> {
    let bins = bins.clamp(1, MAX_BINS);
    let values: Vec<Vec<f64>> = groups
        .iter()
        .map(|(_, vs)| vs.iter().copied().filter(|v| plottable(*v)).collect())
        .collect();
    let (lo, hi) = match bounds(values.iter().flatten().copied()) {
        // All values equal: centre them in the middle bin.
        Some((v, w)) if v == w => {
            let (lo, hi) = span_range(Some((v, v)));
            let bin_width = (hi - lo) / bins as f64;
            let lo = v - bin_width * ((bins / 2) as f64 + 0.5);
            (lo, lo + bin_width * bins as f64)
        }
        other => span_range(other),
    };
    let bin_width = (hi - lo) / bins as f64;

    // counts[g][b]: how many values of group g fall into bin b; the last bin
    // includes the upper end of the range.
    let counts: Vec<Vec<u32>> = values
        .iter()
        .map(|vs| {
            let mut row = vec![0u32; bins];
            for v in vs {
                // Truncation is the binning; `as` saturates at 0 for values
                // just below `lo` through rounding.
                let b = (((v - lo) / bin_width).floor() as usize).min(bins - 1);
                if let Some(count) = row.get_mut(b) {
                    *count = count.saturating_add(1);
                }
            }
            row
        })
        .collect();
    let max_count = counts.iter().flatten().copied().max().unwrap_or(0);
    // Headroom of about 10 %, at least one count.
    let top = max_count.saturating_add((max_count / 10).max(1));

    let entries: Vec<LegendEntry> = if groups.len() > 1 {
        groups
            .iter()
            .zip(&values)
            .enumerate()
            .map(|(i, ((name, _), vs))| LegendEntry {
                label: format!("{} (n={})", shorten(name, MAX_LABEL_CHARS), vs.len()),
                colour: colour(i),
                swatch: Swatch::Block,
            })
            .collect()
    } else {
        Vec::new()
    };
    let (plot_area, legend_area) = split_for_legend(root, &entries)?;

    let mut chart = ChartBuilder::on(&plot_area)
        .caption(title, title_style())
        .margin(14)
        .margin_right(26)
        .x_label_area_size(56)
        .y_label_area_size(78)
        .build_cartesian_2d(lo..hi, 0u32..top)
        .map_err(msg)?;
    let x_format = TickFormat::for_range(lo, hi);
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .x_labels(10)
        .y_labels(10)
        .x_label_formatter(&|v| x_format.format(*v))
        .label_style(tick_style())
        .axis_desc_style(axis_desc_style())
        .bold_line_style(BOLD_GRID)
        .light_line_style(LIGHT_GRID)
        .max_light_lines(4)
        .draw()
        .map_err(msg)?;

    let group_count = groups.len().max(1) as f64;
    let bar_width = bin_width * 0.9 / group_count;
    for (g, row) in counts.iter().enumerate() {
        let c = colour(g);
        let bars = row
            .iter()
            .enumerate()
            .filter(|(_, count)| **count > 0)
            .map(|(b, &count)| {
                let left = lo + b as f64 * bin_width + bin_width * 0.05 + g as f64 * bar_width;
                Rectangle::new([(left, 0), (left + bar_width, count)], c.filled())
            });
        chart.draw_series(bars).map_err(msg)?;
    }
    if values.iter().all(Vec::is_empty) {
        draw_no_data(chart.plotting_area())?;
    }
    if let Some(area) = legend_area {
        draw_legend(&area, &entries)?;
    }
    Ok(())
}

/// Draws [`grouped_bars`] onto `root`.
fn draw_grouped_bars(
    root: &Area<'_>,
    title: &str,
    y_label: &str,
    categories: &[String],
    series: &[(String, Vec<f64>)],
) -> Result<(), String> {
    let n = categories.len();
    let (y0, y1) = value_range(bounds(
        series.iter().flat_map(|(_, vs)| vs.iter().take(n).copied()),
    ));

    let entries: Vec<LegendEntry> = if series.len() > 1 {
        series
            .iter()
            .enumerate()
            .map(|(i, (name, _))| LegendEntry {
                label: shorten(name, MAX_LABEL_CHARS),
                colour: colour(i),
                swatch: Swatch::Block,
            })
            .collect()
    } else {
        Vec::new()
    };
    let (plot_area, legend_area) = split_for_legend(root, &entries)?;

    // Category i occupies [i, i + 1) on x; its label is drawn under the
    // centre by hand, since plotters has no formatter for such key points.
    // Labels too wide for their slot are written vertically, shortened to
    // fit a label area of at most `MAX_VERTICAL_LABEL` pixels.
    let x_end = n.max(1) as f64;
    let (plot_width, _) = plot_area.dim_in_pixel();
    let slot_px = plot_width.saturating_sub(110) / u32::try_from(n.max(1)).unwrap_or(u32::MAX);
    let style = tick_style();
    let mut labels = Vec::with_capacity(n);
    let mut widest = 0u32;
    for category in categories {
        let mut label = shorten(category, MAX_LABEL_CHARS);
        let mut width = root.estimate_text_size(&label, &style).map_err(msg)?.0;
        while width > MAX_VERTICAL_LABEL && label.chars().count() > 3 {
            label = shorten(&label, label.chars().count() - 1);
            width = root.estimate_text_size(&label, &style).map_err(msg)?.0;
        }
        widest = widest.max(width);
        labels.push(label);
    }
    let vertical = widest + 8 > slot_px;
    let label_area = if vertical { widest + 24 } else { 40 };

    let mut chart = ChartBuilder::on(&plot_area)
        .caption(title, title_style())
        .margin(14)
        .margin_right(26)
        .x_label_area_size(label_area)
        .y_label_area_size(78)
        .build_cartesian_2d(0.0..x_end, y0..y1)
        .map_err(msg)?;
    let y_format = TickFormat::for_range(y0, y1);
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc(y_label)
        .y_labels(10)
        .y_label_formatter(&|v| y_format.format(*v))
        .label_style(tick_style())
        .axis_desc_style(axis_desc_style())
        .bold_line_style(BOLD_GRID)
        .light_line_style(LIGHT_GRID)
        .max_light_lines(4)
        .draw()
        .map_err(msg)?;
    let category_style = if vertical {
        style
            .transform(FontTransform::Rotate270)
            .pos(Pos::new(HPos::Right, VPos::Center))
    } else {
        style.pos(Pos::new(HPos::Center, VPos::Top))
    };
    for (i, label) in labels.into_iter().enumerate() {
        let (x, y) = chart.backend_coord(&(i as f64 + 0.5, y0));
        root.draw(&Text::new(
            label,
            (x, y.saturating_add(10)),
            category_style.clone(),
        ))
        .map_err(msg)?;
    }

    let slot = 0.8 / series.len().max(1) as f64;
    let gap = slot * 0.08;
    let value_format = TickFormat::for_range(y0, y1);
    let mut any_bar = false;
    for (j, (_, values)) in series.iter().enumerate() {
        let c = colour(j);
        for (i, &v) in values.iter().take(n).enumerate() {
            if !plottable(v) {
                continue;
            }
            any_bar = true;
            let left = i as f64 + 0.1 + j as f64 * slot + gap;
            let right = left + slot - 2.0 * gap;
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(left, 0.0), (right, v)],
                    c.filled(),
                )))
                .map_err(msg)?;

            // The value above (or below, if negative) the bar, when it fits.
            let label = value_format.format(v);
            let (text_width, _) = root
                .estimate_text_size(&label, &value_style())
                .map_err(msg)?;
            let (px_left, _) = chart.backend_coord(&(left, 0.0));
            let (px_right, _) = chart.backend_coord(&(right, 0.0));
            let bar_px = px_right.saturating_sub(px_left).saturating_add(2);
            if i64::from(text_width) <= i64::from(bar_px) {
                let (offset, vpos) = if v >= 0.0 {
                    (-3, VPos::Bottom)
                } else {
                    (3, VPos::Top)
                };
                let style = value_style().pos(Pos::new(HPos::Center, vpos));
                chart
                    .draw_series(std::iter::once(
                        EmptyElement::at(((left + right) / 2.0, v))
                            + Text::new(label, (0, offset), style),
                    ))
                    .map_err(msg)?;
            }
        }
    }
    if !any_bar {
        draw_no_data(chart.plotting_area())?;
    }
    if let Some(area) = legend_area {
        draw_legend(&area, &entries)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];

    /// Checks that `path` holds a 1000×600 PNG with something drawn on its
    /// white background, and returns the decoded image.
    fn check_png(path: &Path) -> image::RgbImage {
        let bytes = std::fs::read(path).unwrap();
        assert!(bytes.starts_with(&PNG_SIGNATURE), "not a PNG: {path:?}");
        assert!(bytes.len() > 5_000, "suspiciously small PNG: {path:?}");
        let image = image::load_from_memory_with_format(&bytes, image::ImageFormat::Png)
            .unwrap()
            .to_rgb8();
        assert_eq!(image.dimensions(), (WIDTH, HEIGHT));
        assert!(
            image.as_raw().iter().any(|&b| b < 128),
            "nothing dark drawn: {path:?}"
        );
        image
    }

    /// Whether `image` contains a pixel of exactly `colour`.
    fn has_colour(image: &image::RgbImage, colour: RGBColor) -> bool {
        let wanted = [colour.0, colour.1, colour.2];
        image.as_raw().chunks_exact(3).any(|p| p == wanted)
    }

    fn utilization() -> Vec<Series> {
        let curve = |phase: f64, scale: f64| {
            (0..=200)
                .map(|i| {
                    let t = f64::from(i) * 30.0;
                    (
                        t,
                        (50.0 + scale * (t / 600.0 + phase).sin()).clamp(0.0, 100.0),
                    )
                })
                .collect()
        };
        vec![
            Series {
                name: "utilization".into(),
                points: curve(0.0, 40.0),
                dashed: false,
            },
            Series {
                name: "queue-aware (moving average)".into(),
                points: curve(1.0, 25.0),
                dashed: true,
            },
            Series {
                name: "single point".into(),
                points: vec![(3000.0, 90.0)],
                dashed: false,
            },
        ]
    }

    #[test]
    fn line_chart_writes_a_png() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("utilization.png");
        line_chart(
            &path,
            "Utilization over time",
            "virtual time (s)",
            "utilization (%)",
            &utilization(),
        )
        .unwrap();
        let image = check_png(&path);
        for i in 0..3 {
            assert!(has_colour(&image, colour(i)), "series {i} not drawn");
        }
    }

    #[test]
    fn line_chart_few_points_and_one_series() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wrong.png");
        let series = [Series {
            name: "wrong-result rate".into(),
            points: vec![(0.0, 0.0), (0.1, 0.004), (0.2, 0.011), (0.3, 0.025)],
            dashed: false,
        }];
        line_chart(&path, "Wrong results", "saboteur fraction", "rate", &series).unwrap();
        let image = check_png(&path);
        assert!(has_colour(&image, colour(0)));
    }

    #[test]
    fn line_chart_degenerate_data() {
        let dir = tempfile::tempdir().unwrap();
        let cases: Vec<Vec<Series>> = vec![
            vec![],
            vec![Series {
                name: String::new(),
                points: vec![],
                dashed: true,
            }],
            vec![Series {
                name: "one".into(),
                points: vec![(5.0, 5.0)],
                dashed: true,
            }],
            vec![
                Series {
                    name: "flat zero".into(),
                    points: vec![(1.0, 0.0), (1.0, 0.0)],
                    dashed: false,
                },
                Series {
                    name: "junk".into(),
                    points: vec![(f64::NAN, 1.0), (f64::INFINITY, 2.0), (1.0, f64::MAX)],
                    dashed: false,
                },
            ],
            vec![Series {
                name: "negative".into(),
                points: vec![(-3.0, -2.0), (4.0, -1e7)],
                dashed: false,
            }],
        ];
        for (i, series) in cases.iter().enumerate() {
            let path = dir.path().join(format!("degenerate-{i}.png"));
            line_chart(&path, "degenerate", "x", "y", series).unwrap();
            check_png(&path);
        }
    }

    #[test]
    fn histogram_writes_a_png() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("earnings.png");
        let spread = |n: u32, centre: f64, width: f64| -> Vec<f64> {
            (0..n)
                .map(|i| centre + width * ((f64::from(i) * 0.7).sin()))
                .collect()
        };
        let groups = vec![
            ("honest".to_owned(), spread(120, 5200.0, 900.0)),
            ("flaky".to_owned(), spread(40, 2600.0, 700.0)),
            ("saboteur".to_owned(), spread(20, 300.0, 250.0)),
        ];
        histogram(
            &path,
            "Earnings per provider",
            "earnings (credits)",
            "providers",
            &groups,
            25,
        )
        .unwrap();
        let image = check_png(&path);
        for i in 0..3 {
            assert!(has_colour(&image, colour(i)), "group {i} not drawn");
        }
    }

    #[test]
    fn histogram_degenerate_data() {
        let dir = tempfile::tempdir().unwrap();
        type Groups = Vec<(String, Vec<f64>)>;
        let cases: Vec<(Groups, usize)> = vec![
            (vec![], 10),
            (vec![("empty".into(), vec![])], 10),
            (vec![("equal".into(), vec![7.0; 12])], 10),
            (vec![("zeros".into(), vec![0.0; 3])], 0),
            (
                vec![
                    ("a".into(), vec![1.0, 2.0]),
                    ("empty".into(), vec![]),
                    ("junk".into(), vec![f64::NAN, f64::NEG_INFINITY]),
                ],
                usize::MAX,
            ),
        ];
        for (i, (groups, bins)) in cases.iter().enumerate() {
            let path = dir.path().join(format!("degenerate-{i}.png"));
            histogram(&path, "degenerate", "x", "count", groups, *bins).unwrap();
            check_png(&path);
        }
    }

    #[test]
    fn grouped_bars_writes_a_png() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("makespan.png");
        let categories: Vec<String> = ["small", "medium", "large", "skewed"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let series = vec![
            ("round-robin".to_owned(), vec![120.0, 480.0, 2100.0, 900.0]),
            ("min-min".to_owned(), vec![100.0, 400.0, 1800.0, 650.0]),
            ("max-min".to_owned(), vec![105.0, 390.0, 1700.0, 700.0]),
            ("earliest finish".to_owned(), vec![95.0, 370.0, 1650.0]),
        ];
        grouped_bars(
            &path,
            "Makespan per heuristic",
            "makespan (s)",
            &categories,
            &series,
        )
        .unwrap();
        let image = check_png(&path);
        for i in 0..4 {
            assert!(has_colour(&image, colour(i)), "series {i} not drawn");
        }
    }

    #[test]
    fn grouped_bars_degenerate_data() {
        let dir = tempfile::tempdir().unwrap();
        let one = vec!["only".to_owned()];
        type Bars = Vec<(String, Vec<f64>)>;
        let cases: Vec<(Vec<String>, Bars)> = vec![
            (vec![], vec![]),
            (one.clone(), vec![]),
            (vec![], vec![("a".into(), vec![1.0])]),
            (one.clone(), vec![("zero".into(), vec![0.0])]),
            (
                one.clone(),
                vec![
                    ("neg".into(), vec![-5.0]),
                    ("nan".into(), vec![f64::NAN]),
                    ("short".into(), vec![]),
                ],
            ),
        ];
        for (i, (categories, series)) in cases.iter().enumerate() {
            let path = dir.path().join(format!("degenerate-{i}.png"));
            grouped_bars(&path, "degenerate", "y", categories, series).unwrap();
            check_png(&path);
        }
    }

    #[test]
    fn empty_texts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blank.png");
        let blank = Series {
            name: String::new(),
            points: vec![(0.0, 1.0), (1.0, 2.0)],
            dashed: false,
        };
        line_chart(&path, "", "", "", &[blank.clone(), blank]).unwrap();
        check_png(&path);
        histogram(&path, "", "", "", &[(String::new(), vec![1.0])], 3).unwrap();
        check_png(&path);
        grouped_bars(
            &path,
            "",
            "",
            &[String::new()],
            &[(String::new(), vec![1.0])],
        )
        .unwrap();
        check_png(&path);
    }

    #[test]
    fn unwritable_path_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("chart.png");
        let error = line_chart(&path, "t", "x", "y", &utilization()).unwrap_err();
        assert!(matches!(error, PlotError::Write { .. }), "{error:?}");
        assert!(error.to_string().contains("chart.png"));
    }

    #[test]
    fn path_extension_does_not_matter() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chart.out");
        grouped_bars(
            &path,
            "t",
            "y",
            &["c".to_owned()],
            &[("s".into(), vec![1.0])],
        )
        .unwrap();
        check_png(&path);
    }

    #[test]
    fn tick_format() {
        let f = TickFormat::for_range(0.0, 100.0);
        assert_eq!(f.format(20.0), "20");
        let f = TickFormat::for_range(0.0, 1.0);
        assert_eq!(f.format(0.25), "0.25");
        assert_eq!(f.format(0.5), "0.5");
        let f = TickFormat::for_range(0.0, 86_400.0);
        assert_eq!(f.format(20_000.0), "20k");
        let f = TickFormat::for_range(-2e6, 3e6);
        assert_eq!(f.format(-1.5e6), "-1.5M");
        assert_eq!(f.format(-0.0), "0");
    }

    #[test]
    fn shorten_long_labels() {
        assert_eq!(shorten("abc", 5), "abc");
        assert_eq!(shorten("abcdef", 4), "ab…f");
        assert_eq!(shorten("instance-01-long", 9), "inst…long");
        assert_eq!(shorten("abcdef", 0), "a…f");
    }
}
