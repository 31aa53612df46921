//! One self-contained HTML file of a run, for people: throughput over time and latency
//! percentiles over time per operation kind (SVG charts drawn by plotters, inline), the
//! per-kind figures, the error breakdown and the `check` verdict. Written by
//! `interbank load --report FILE.html` and `interbank bench packages --report FILE.html`.

// Figures for people are floats; no money is computed here.
#![allow(clippy::float_arithmetic, clippy::cast_precision_loss)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;

/// One operation that was answered: when (since the run began), what, how long it took.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub at_ms: u64,
    pub kind: &'static str,
    pub micros: u64,
}

/// What a report shows.
#[derive(Debug)]
pub struct Run<'a> {
    pub title: String,
    /// Lines of context (the command, the network, the date).
    pub about: Vec<String>,
    pub samples: &'a [Sample],
    /// Refusals and failures by reason.
    pub errors: BTreeMap<String, u64>,
    /// `Some(violations)` when `check` ran; empty is clean.
    pub check: Option<Vec<String>>,
}

/// Per kind and second: (operations, p50 ms, p99 ms).
type Series = BTreeMap<&'static str, Vec<(u64, u64, f64, f64)>>;

fn series(samples: &[Sample]) -> Series {
    let mut by: BTreeMap<(&'static str, u64), Vec<u64>> = BTreeMap::new();
    for s in samples {
        by.entry((s.kind, s.at_ms / 1000)).or_default().push(s.micros);
    }
    let mut out: Series = BTreeMap::new();
    for ((kind, sec), mut v) in by {
        v.sort_unstable();
        let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0;
        out.entry(kind).or_default().push((sec, v.len() as u64, q(0.5), q(0.99)));
    }
    out
}

const COLOURS: [RGBColor; 6] = [
    RGBColor(20, 33, 61),
    RGBColor(252, 163, 17),
    RGBColor(27, 94, 32),
    RGBColor(176, 0, 32),
    RGBColor(90, 60, 160),
    RGBColor(0, 120, 150),
];

/// One line chart: a line per kind of `(second, value)` points.
fn chart(title: &str, y_label: &str, lines: &[(&str, Vec<(f64, f64)>)]) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (860, 300)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let x_max = lines.iter().flat_map(|(_, p)| p.iter().map(|p| p.0)).fold(1.0_f64, f64::max);
        let y_max = lines.iter().flat_map(|(_, p)| p.iter().map(|p| p.1)).fold(1.0_f64, f64::max) * 1.1;
        let mut c = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..x_max, 0.0..y_max)
            .map_err(|e| e.to_string())?;
        c.configure_mesh().x_desc("s").y_desc(y_label).draw().map_err(|e| e.to_string())?;
        for (i, (name, points)) in lines.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            c.draw_series(LineSeries::new(points.iter().copied(), colour.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(*name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2)));
        }
        c.configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The report as one HTML document.
pub fn html(run: &Run<'_>) -> Result<String, String> {
    let s = series(run.samples);
    let line = |f: fn(&(u64, u64, f64, f64)) -> f64| -> Vec<(&str, Vec<(f64, f64)>)> {
        s.iter().map(|(k, v)| (*k, v.iter().map(|p| (p.0 as f64, f(p))).collect())).collect()
    };
    let throughput = chart("Throughput", "operations/s", &line(|p| p.1 as f64))?;
    let p50 = chart("Latency p50", "ms", &line(|p| p.2))?;
    let p99 = chart("Latency p99", "ms", &line(|p| p.3))?;
    let mut out = String::with_capacity(throughput.len() * 4);
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>{t}</title>\
         <style>body{{font-family:system-ui,sans-serif;margin:2rem;color:#14213d}}table{{border-collapse:collapse}}\
         td,th{{padding:.25rem .6rem;border-bottom:1px solid #dde;text-align:right}}th:first-child,td:first-child{{text-align:left}}\
         .ok{{color:#1b5e20}}.bad{{color:#b00020}}svg{{max-width:100%;height:auto}}</style><h1>{t}</h1>",
        t = escape(&run.title)
    );
    for a in &run.about {
        let _ = write!(out, "<p>{}</p>", escape(a));
    }
    out.push_str("<h2>Verdict</h2>");
    match &run.check {
        Some(v) if v.is_empty() => {
            out.push_str("<p class=\"ok\" id=\"verdict\">check: clean (journal replay = amounts, money conserved)</p>")
        }
        Some(v) => {
            let _ = write!(out, "<p class=\"bad\" id=\"verdict\">check: {} violations</p><ul>", v.len());
            for x in v {
                let _ = write!(out, "<li>{}</li>", escape(x));
            }
            out.push_str("</ul>");
        }
        None => out.push_str("<p id=\"verdict\">check: not run</p>"),
    }
    out.push_str("<h2>Per kind</h2><table><tr><th>kind</th><th>answered</th><th>per s</th><th>p50 ms</th><th>p99 ms</th><th>max ms</th></tr>");
    let span_s = run.samples.iter().map(|x| x.at_ms).max().unwrap_or(0).max(1) as f64 / 1000.0;
    let mut kinds: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for x in run.samples {
        kinds.entry(x.kind).or_default().push(x.micros);
    }
    for (k, mut v) in kinds {
        v.sort_unstable();
        let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0;
        let _ = write!(
            out,
            "<tr><td>{k}</td><td>{}</td><td>{:.0}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td></tr>",
            v.len(),
            v.len() as f64 / span_s,
            q(0.5),
            q(0.99),
            q(1.0)
        );
    }
    out.push_str("</table><h2>Errors</h2>");
    if run.errors.is_empty() {
        out.push_str("<p>none</p>");
    } else {
        out.push_str("<table id=\"errors\"><tr><th>reason</th><th>count</th></tr>");
        for (k, n) in &run.errors {
            let _ = write!(out, "<tr><td>{}</td><td>{n}</td></tr>", escape(k));
        }
        out.push_str("</table>");
    }
    let _ = writeln!(out, "<h2>Over time</h2>{throughput}{p50}{p99}</html>");
    Ok(out)
}

/// Writes the report to `path`.
pub fn write(path: &Path, run: &Run<'_>) -> crate::Result<()> {
    let doc = html(run).map_err(|e| crate::Error::run(format!("drawing the report: {e}")))?;
    std::fs::write(path, doc)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_has_its_charts_figures_errors_and_verdict() {
        let samples: Vec<Sample> = (0..3000u64)
            .map(|i| Sample { at_ms: i, kind: if i % 3 == 0 { "deposit" } else { "transfer" }, micros: 1000 + i % 50 })
            .collect();
        let run = Run {
            title: "a run".into(),
            about: vec!["interbank load <test>".into()],
            samples: &samples,
            errors: BTreeMap::from([("refused by its bank".to_string(), 7)]),
            check: Some(vec![]),
        };
        let doc = html(&run).unwrap_or_default();
        assert_eq!(doc.matches("<svg").count(), 3, "three charts");
        assert!(doc.contains("Latency p99") && doc.contains("Throughput"));
        assert!(doc.contains("<td>deposit</td><td>1000</td>"), "per-kind figures");
        assert!(doc.contains("<td>refused by its bank</td><td>7</td>"));
        assert!(doc.contains("check: clean"));
        assert!(doc.contains("interbank load &lt;test&gt;"), "text is escaped");
        let bad = Run { check: Some(vec!["money created".into()]), ..run };
        assert!(html(&bad).unwrap_or_default().contains("check: 1 violations"));
    }
}
