//! Bar charts drawn on the server, as SVG geometry for a template.
//!
//! The content security policy forbids inline scripts and the gateway loads
//! nothing from CDNs, so charts are plain SVG in the page: this module works
//! out where each bar goes (integers in a `viewBox`, scaled by CSS), and the
//! template (`admin_dashboard.html`) draws them with askama escaping every
//! text. Each bar carries a `<title>` (what a screen reader or a hovering
//! pointer gets); the page also prints the same figures as a table.
//!
//! Values are non-negative magnitudes; a day whose refunds outweigh its
//! bookings is drawn as an empty bar and its title says the real figure.

/// One value to draw.
#[derive(Clone, Debug)]
pub struct Point {
    /// Short text under (columns) or beside (rows) the bar.
    pub label: String,
    /// The bar's length; negatives are drawn as zero.
    pub value: i64,
    /// The full description, e.g. "Sun 22 Nov: ₹500 from 1 booking".
    pub title: String,
    /// Printed at the end of the bar (rows only), e.g. "12 seats".
    pub value_text: String,
}

/// A bar, positioned in the chart's `viewBox`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bar {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
    pub label: String,
    /// Where the label's text starts (rows) or is centred (columns).
    pub label_x: u32,
    pub label_y: u32,
    /// Whether the label is printed (columns skip some when crowded).
    pub show_label: bool,
    pub title: String,
    pub value_text: String,
    /// Where `value_text` goes.
    pub value_x: u32,
}

/// A chart's size and bars.
#[derive(Clone, Debug)]
pub struct Chart {
    pub width: u32,
    pub height: u32,
    /// The y of the baseline (columns).
    pub baseline: u32,
    pub bars: Vec<Bar>,
}

impl Chart {
    /// Whether every value is zero (the template says "nothing yet").
    pub fn is_empty(&self) -> bool {
        self.bars
            .iter()
            .all(|bar| bar.height == 0 || bar.width == 0)
    }
}

const COLUMN_SLOT: u32 = 40;
const COLUMN_GAP: u32 = 8;
const PLOT_HEIGHT: u32 = 160;
const LABEL_SPACE: u32 = 24;
/// Most column labels printed; beyond that every n-th.
const MAX_COLUMN_LABELS: usize = 16;

/// Vertical bars, one per point, left to right (revenue per day).
pub fn columns(points: &[Point]) -> Chart {
    let max = points.iter().map(|p| p.value.max(0)).max().unwrap_or(0);
    let every = points.len().div_ceil(MAX_COLUMN_LABELS).max(1);
    let count = u32::try_from(points.len()).unwrap_or(u32::MAX);
    let bars = points
        .iter()
        .enumerate()
        .map(|(i, point)| {
            let x = u32::try_from(i)
                .unwrap_or(u32::MAX)
                .saturating_mul(COLUMN_SLOT);
            let height = scale(point.value, max, PLOT_HEIGHT);
            Bar {
                x: x + COLUMN_GAP / 2,
                y: PLOT_HEIGHT - height,
                width: COLUMN_SLOT - COLUMN_GAP,
                height,
                label: point.label.clone(),
                label_x: x + COLUMN_SLOT / 2,
                label_y: PLOT_HEIGHT + LABEL_SPACE - 8,
                show_label: i % every == 0,
                title: point.title.clone(),
                value_text: point.value_text.clone(),
                value_x: 0,
            }
        })
        .collect();
    Chart {
        width: count.saturating_mul(COLUMN_SLOT).max(COLUMN_SLOT),
        height: PLOT_HEIGHT + LABEL_SPACE,
        baseline: PLOT_HEIGHT,
        bars,
    }
}

const ROW_HEIGHT: u32 = 28;
const ROW_GAP: u32 = 8;
const ROW_LABEL_WIDTH: u32 = 200;
const ROW_PLOT_WIDTH: u32 = 320;
const ROW_VALUE_SPACE: u32 = 120;
/// Longest label drawn beside a row; the title and table keep the full text.
const ROW_LABEL_CHARS: usize = 26;

/// Horizontal bars, one per point, top to bottom (top films).
pub fn rows(points: &[Point]) -> Chart {
    let max = points.iter().map(|p| p.value.max(0)).max().unwrap_or(0);
    let count = u32::try_from(points.len()).unwrap_or(u32::MAX);
    let bars = points
        .iter()
        .enumerate()
        .map(|(i, point)| {
            let y = u32::try_from(i)
                .unwrap_or(u32::MAX)
                .saturating_mul(ROW_HEIGHT);
            let width = scale(point.value, max, ROW_PLOT_WIDTH);
            Bar {
                x: ROW_LABEL_WIDTH,
                y: y + ROW_GAP / 2,
                width,
                height: ROW_HEIGHT - ROW_GAP,
                label: shorten(&point.label, ROW_LABEL_CHARS),
                label_x: ROW_LABEL_WIDTH - 8,
                label_y: y + ROW_HEIGHT / 2 + 4,
                show_label: true,
                title: point.title.clone(),
                value_text: point.value_text.clone(),
                value_x: ROW_LABEL_WIDTH + width + 6,
            }
        })
        .collect();
    Chart {
        width: ROW_LABEL_WIDTH + ROW_PLOT_WIDTH + ROW_VALUE_SPACE,
        height: count.saturating_mul(ROW_HEIGHT).max(ROW_HEIGHT),
        baseline: 0,
        bars,
    }
}

/// `value` of `max` as a length of at most `length`; any positive value
/// gets at least one unit so it is visible.
fn scale(value: i64, max: i64, length: u32) -> u32 {
    if value <= 0 || max <= 0 {
        return 0;
    }
    let scaled = i128::from(value) * i128::from(length) / i128::from(max);
    u32::try_from(scaled).unwrap_or(length).clamp(1, length)
}

/// `text` cut to `chars` characters with an ellipsis.
fn shorten(text: &str, chars: usize) -> String {
    if text.chars().count() <= chars {
        return text.to_owned();
    }
    let mut short: String = text.chars().take(chars.saturating_sub(1)).collect();
    short.push('…');
    short
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(label: &str, value: i64) -> Point {
        Point {
            label: label.into(),
            value,
            title: format!("{label}: {value}"),
            value_text: value.to_string(),
        }
    }

    #[test]
    fn the_largest_column_fills_the_plot_and_others_scale_to_it() {
        let chart = columns(&[point("a", 50), point("b", 100), point("c", 0)]);
        let heights: Vec<u32> = chart.bars.iter().map(|b| b.height).collect();
        assert_eq!(heights, vec![PLOT_HEIGHT / 2, PLOT_HEIGHT, 0]);
        // Bars stand on the baseline.
        assert!(chart.bars.iter().all(|b| b.y + b.height == chart.baseline));
        assert_eq!(chart.width, 3 * COLUMN_SLOT);
    }

    #[test]
    fn tiny_values_stay_visible_and_negatives_draw_nothing() {
        let chart = columns(&[point("a", 1), point("b", 1_000_000), point("c", -500)]);
        assert_eq!(chart.bars[0].height, 1);
        assert_eq!(chart.bars[2].height, 0);
        assert_eq!(chart.bars[2].title, "c: -500", "the title keeps the figure");
    }

    #[test]
    fn all_zero_values_draw_no_bars_and_still_have_a_size() {
        let chart = columns(&[point("a", 0), point("b", 0)]);
        assert!(chart.bars.iter().all(|b| b.height == 0));
        let empty = rows(&[]);
        assert!(empty.bars.is_empty());
        assert!(empty.width > 0 && empty.height > 0, "a valid viewBox");
    }

    #[test]
    fn crowded_columns_label_only_some_bars() {
        let points: Vec<Point> = (0..366).map(|i| point(&i.to_string(), i)).collect();
        let shown = columns(&points)
            .bars
            .iter()
            .filter(|b| b.show_label)
            .count();
        assert!(shown <= MAX_COLUMN_LABELS, "{shown}");
        let few: Vec<Point> = (0..14).map(|i| point(&i.to_string(), i)).collect();
        assert!(columns(&few).bars.iter().all(|b| b.show_label));
    }

    #[test]
    fn row_labels_are_shortened_but_titles_are_not() {
        let long = "A Very Long Film Title That Goes On And On";
        let chart = rows(&[point(long, 10), point("Short", 5)]);
        assert_eq!(chart.bars[0].label.chars().count(), ROW_LABEL_CHARS);
        assert!(chart.bars[0].label.ends_with('…'));
        assert!(chart.bars[0].title.starts_with(long));
        assert_eq!(chart.bars[0].width, ROW_PLOT_WIDTH);
        assert_eq!(chart.bars[1].width, ROW_PLOT_WIDTH / 2);
        assert_eq!(
            chart.bars[1].value_x,
            ROW_LABEL_WIDTH + ROW_PLOT_WIDTH / 2 + 6
        );
    }
}
