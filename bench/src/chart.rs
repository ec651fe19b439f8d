//! The two charts of BENCHMARKS.md, as SVG: part 1's cost per path and
//! part 2's drop rates per flood. Both are grouped horizontal bars, so
//! that long path and flood names read as labels, drawn by one function.

use std::path::Path;

use anyhow::{Context as _, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::cost::{Costs, TARGET_RATIO};
use crate::iptables::{Backend, Rules};
use crate::stats::Summary;
use crate::throughput::{FlowResult, Receiver};

/// One bar: a median with its min–max whisker, and the target tick the
/// cost chart puts on iplock's bars.
struct Bar {
    median: f64,
    min: f64,
    max: f64,
    target: Option<f64>,
}

impl Bar {
    fn of(s: &Summary, scale: f64) -> Bar {
        Bar {
            median: s.median * scale,
            min: s.min * scale,
            max: s.max * scale,
            target: None,
        }
    }

    /// Where the bar's drawing ends: its whisker or its tick.
    fn right(&self) -> f64 {
        self.target.map_or(self.max, |t| self.max.max(t))
    }
}

/// One bar per group, in the series' colour; `None` where the group has
/// no such measurement.
struct Series {
    label: String,
    color: RGBColor,
    bars: Vec<Option<Bar>>,
}

struct Chart {
    title: String,
    axis: String,
    groups: Vec<String>,
    series: Vec<Series>,
    /// The legend entry of the bars' target ticks.
    target: Option<String>,
    decimals: usize,
}

const WIDTH: u32 = 960;
const BAR_PX: i32 = 16;
const GROUP_GAP_PX: i32 = 14;
const HEADER_PX: i32 = 64;
const AXIS_PX: i32 = 56;
const FONT: &str = "sans-serif";
const IPLOCK: RGBColor = RGBColor(31, 119, 180);
const IPLOCK_LIGHT: RGBColor = RGBColor(132, 186, 224);
const IPTABLES: RGBColor = RGBColor(214, 39, 40);
const IPTABLES_LIGHT: RGBColor = RGBColor(245, 150, 140);
const FLOOR: RGBColor = RGBColor(150, 150, 150);

/// Writes `cost.svg` and `floods.svg` into `dir`.
pub fn write(dir: &Path, cost: &Costs, flows: &[FlowResult]) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, chart) in [
        ("cost.svg", cost_chart(cost)),
        ("floods.svg", floods_chart(flows)),
    ] {
        let path = dir.join(name);
        draw(&chart, &path).with_context(|| format!("drawing {}", path.display()))?;
    }
    Ok(())
}

fn cost_chart(c: &Costs) -> Chart {
    let iplock = c
        .paths
        .iter()
        .map(|p| {
            Some(Bar {
                target: Some(p.target_ratio * p.reference_over_empty_ns.median),
                ..Bar::of(&p.over_empty_ns, 1.0)
            })
        })
        .collect();
    let reference = c
        .paths
        .iter()
        .map(|p| Some(Bar::of(&p.reference_over_empty_ns, 1.0)))
        .collect();
    Chart {
        title: "Cost per path: iplock and its same-work reference, over the empty program".into(),
        axis: "ns over the empty XDP program (0 = the empty program; median, min–max)".into(),
        groups: c.paths.iter().map(|p| p.name.clone()).collect(),
        series: vec![
            Series {
                label: "iplock − empty".into(),
                color: IPLOCK,
                bars: iplock,
            },
            Series {
                label: "reference − empty".into(),
                color: FLOOR,
                bars: reference,
            },
        ],
        target: Some(format!("target: {TARGET_RATIO} × (reference − empty)")),
        decimals: 0,
    }
}

fn floods_chart(flows: &[FlowResult]) -> Chart {
    // The floods iplock ran against; the 64-source flood only shows the
    // article's rule order.
    let mut groups: Vec<_> = Vec::new();
    for f in flows {
        if f.receiver == Receiver::IplockNative.name() && !groups.contains(&f.flow) {
            groups.push(f.flow);
        }
    }
    // iplock_native_stack has no bar: it drops none of its flood (the
    // knocks go on to TCP), and the chart is of drops.
    let series = [
        (Receiver::IplockNative, IPLOCK),
        (Receiver::IplockSkb, IPLOCK_LIGHT),
        (
            Receiver::Iptables(Backend::Legacy, Rules::Ordered),
            IPTABLES,
        ),
        (
            Receiver::Iptables(Backend::Nft, Rules::Ordered),
            IPTABLES_LIGHT,
        ),
        // The cheapest possible drop: the most this CPU can drop.
        (Receiver::EmptyDrop, FLOOR),
    ]
    .into_iter()
    .map(|(r, color)| {
        let label = r.name();
        let bars = groups
            .iter()
            .map(|g| {
                flows
                    .iter()
                    .find(|f| f.flow == *g && f.receiver == label)
                    .map(|f| Bar::of(&f.dropped_pps, 1e-6))
            })
            .collect();
        Series { label, color, bars }
    })
    .collect();
    Chart {
        title: "Floods: frames dropped per second on one CPU, generator included".into(),
        axis: "million frames dropped per second (median, min–max)".into(),
        groups: groups.iter().map(|g| g.name().to_string()).collect(),
        series,
        target: None,
        decimals: 2,
    }
}

fn draw(chart: &Chart, path: &Path) -> Result<()> {
    let (groups, per_group) = (chart.groups.len() as i32, chart.series.len() as i32);
    // The vertical axis is in about pixels, so that bars keep their height
    // whatever the number of groups: group i fills
    // [(groups - i - 1) * group, (groups - i) * group), the first on top.
    let group = per_group * BAR_PX + GROUP_GAP_PX;
    let height = HEADER_PX + groups * group + AXIS_PX;
    let root = SVGBackend::new(path, (WIDTH, height as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let (header, body) = root.split_vertically(HEADER_PX);
    header.draw(&Text::new(
        chart.title.as_str(),
        (12, 8),
        (FONT, 20).into_font().style(FontStyle::Bold),
    ))?;
    legend(&header, chart)?;

    let bars = || chart.series.iter().flat_map(|s| s.bars.iter().flatten());
    let left = bars().map(|b| b.min).fold(0.0, f64::min);
    let right = bars().map(Bar::right).fold(0.0, f64::max);
    // Room right of the longest bar for its value.
    let x = left..(right * 1.12).max(1.0);
    let centres: Vec<i32> = (0..groups)
        .map(|i| (groups - i) * group - group / 2)
        .collect();
    // As wide as the longest group name, at about 8 px a character.
    let longest = chart.groups.iter().map(|g| g.chars().count()).max();
    let mut plot_area = ChartBuilder::on(&body)
        .margin_right(24)
        .x_label_area_size(AXIS_PX - 8)
        .y_label_area_size(16 + 8 * longest.unwrap_or(0) as u32)
        .build_cartesian_2d(x, (0..groups * group).with_key_points(centres))?;
    // The axis with the precision of the bars' values.
    let value = |v: &f64| format!("{v:.d$}", d = chart.decimals);
    let group_label = |v: &i32| {
        let i = groups - 1 - v / group;
        usize::try_from(i)
            .ok()
            .and_then(|i| chart.groups.get(i))
            .cloned()
            .unwrap_or_default()
    };
    plot_area
        .configure_mesh()
        .disable_y_mesh()
        .x_max_light_lines(1)
        .x_desc(chart.axis.as_str())
        .x_label_formatter(&value)
        .y_label_formatter(&group_label)
        .label_style((FONT, 16))
        .axis_desc_style((FONT, 17))
        .draw()?;

    for (k, s) in (0..).zip(&chart.series) {
        for (i, b) in (0..).zip(&s.bars) {
            let Some(b) = b else { continue };
            let top = (groups - i) * group - GROUP_GAP_PX / 2 - k * BAR_PX;
            let (bottom, mid) = (top - BAR_PX + 3, top - BAR_PX / 2 + 1);
            let bar = Rectangle::new([(0.0, top), (b.median, bottom)], s.color.filled());
            let whisker = [
                PathElement::new(vec![(b.min, mid), (b.max, mid)], BLACK),
                PathElement::new(vec![(b.min, top - 3), (b.min, bottom + 3)], BLACK),
                PathElement::new(vec![(b.max, top - 3), (b.max, bottom + 3)], BLACK),
            ];
            let target = b.target.map(|t| {
                PathElement::new(vec![(t, top + 2), (t, bottom - 2)], BLACK.stroke_width(3))
            });
            // The median, a few pixels clear of the whisker's cap or the tick.
            let label = EmptyElement::at((b.right(), mid))
                + Text::new(
                    value(&b.median),
                    (6, 0),
                    TextStyle::from((FONT, 15)).pos(Pos::new(HPos::Left, VPos::Center)),
                );
            plot_area.draw_series([bar])?;
            plot_area.draw_series(whisker)?;
            plot_area.draw_series(target)?;
            plot_area.draw_series([label])?;
        }
    }
    root.present()?;
    Ok(())
}

/// One row under the title: a swatch and a label per series, then the
/// target tick's.
fn legend(area: &DrawingArea<SVGBackend, Shift>, chart: &Chart) -> Result<()> {
    let font = TextStyle::from((FONT, 16)).pos(Pos::new(HPos::Left, VPos::Center));
    let (mut x, y) = (12, 46);
    for s in &chart.series {
        area.draw(&Rectangle::new(
            [(x, y - 7), (x + 14, y + 7)],
            s.color.filled(),
        ))?;
        area.draw(&Text::new(s.label.as_str(), (x + 20, y), font.clone()))?;
        // plotters cannot measure text the viewer will set: 8 px is about a
        // sans-serif character at this size.
        x += 48 + 8 * s.label.chars().count() as i32;
    }
    if let Some(t) = &chart.target {
        area.draw(&PathElement::new(
            vec![(x + 6, y - 9), (x + 6, y + 9)],
            BLACK.stroke_width(3),
        ))?;
        area.draw(&Text::new(t.as_str(), (x + 16, y), font))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::PathCost;
    use crate::throughput::{Accounting, Flow};

    fn summary(median: f64) -> Summary {
        Summary::of(&[median * 0.9, median, median * 1.2])
    }

    fn path(name: &str, iplock: f64, reference: f64) -> PathCost {
        PathCost {
            name: name.into(),
            what: "w".into(),
            verdict: "drop",
            counter: "c",
            timed: "repeated",
            iplock_ns: summary(iplock + 30.0),
            empty_pass_ns: summary(30.0),
            empty_drop_ns: summary(30.0),
            reference: "r",
            reference_does: "d",
            reference_ns: summary(reference + 30.0),
            over_empty_ns: summary(iplock),
            reference_over_empty_ns: summary(reference),
            ratio: summary(iplock / reference),
            target_ratio: TARGET_RATIO,
            target_met: iplock <= TARGET_RATIO * reference,
        }
    }

    fn flow(flow: Flow, receiver: Receiver, dropped_pps: f64) -> FlowResult {
        FlowResult {
            flow,
            receiver: receiver.name(),
            frames_per_run: 100_000,
            ns_per_frame: summary(1e9 / dropped_pps),
            pps: summary(dropped_pps),
            dropped_pps: summary(dropped_pps),
            wall_pps: summary(dropped_pps * 0.8),
            last_run: Accounting::default(),
        }
    }

    #[test]
    fn both_charts_are_svg_naming_every_path_and_flood() {
        let cost = Costs {
            repeat: 1,
            batch: 1,
            runs: 3,
            config: "",
            cpu: None,
            paths: vec![
                path("syn_drop_v4", 60.0, 40.0),
                path("knock_step0_v6", 410.0, 380.0),
            ],
            references: Vec::new(),
        };
        let legacy = Receiver::Iptables(Backend::Legacy, Rules::Ordered);
        let flows = vec![
            flow(Flow::SynFlood, Receiver::IplockNative, 2.4e6),
            flow(Flow::SynFlood, legacy, 0.39e6),
            flow(Flow::KnockFlood, Receiver::IplockNative, 0.77e6),
            flow(Flow::KnockFlood, Receiver::IplockSkb, 0.59e6),
            flow(Flow::KnockFlood, Receiver::IplockNativeStack, 0.0),
            // Not a flood iplock ran against: no group of its own.
            flow(Flow::SynFloodFewSources, legacy, 0.37e6),
        ];
        let dir = std::env::temp_dir().join(format!("iplock-bench-charts-{}", std::process::id()));
        write(&dir, &cost, &flows).unwrap();
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
        let (cost_svg, floods_svg) = (read("cost.svg"), read("floods.svg"));
        std::fs::remove_dir_all(&dir).unwrap();

        assert!(cost_svg.starts_with("<svg") && cost_svg.trim_end().ends_with("</svg>"));
        for label in [
            "syn_drop_v4",
            "knock_step0_v6",
            "ns over the empty XDP program",
        ] {
            assert!(cost_svg.contains(label), "cost.svg has no {label}");
        }
        assert!(floods_svg.starts_with("<svg") && floods_svg.trim_end().ends_with("</svg>"));
        for label in [
            "syn_flood",
            "knock_flood_v6",
            "iplock_native",
            "iptables_legacy",
        ] {
            assert!(floods_svg.contains(label), "floods.svg has no {label}");
        }
        assert!(!floods_svg.contains(Flow::SynFloodFewSources.name()));
        assert!(!floods_svg.contains(&Receiver::IplockNativeStack.name()));
    }
}
