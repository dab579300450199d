//! Posters for films that have none.
//!
//! A film without a `poster_url` still deserves a card that looks deliberate,
//! so the gateway draws one: an SVG with a two-colour gradient derived from
//! the slug (the same film always gets the same colours, neighbouring films
//! usually differ) and the title wrapped onto a few centred lines. SVG keeps it
//! a few hundred bytes, sharp at any size, and needs no image library.

use crate::fingerprint::fnv1a;

/// Width of a poster in SVG units; posters are 2:3.
const WIDTH: u32 = 400;
const HEIGHT: u32 = 600;
/// Characters per title line at the font size used.
const LINE_CHARS: usize = 14;
const MAX_LINES: usize = 5;

/// Where the gateway serves the fallback poster of `slug`.
pub fn fallback_path(slug: &str) -> String {
    format!("/posters/{slug}.svg")
}

/// The slug in a `/posters/{file}` request, when `file` is `<slug>.svg` with a
/// well-formed slug.
pub fn slug_from_file_name(file: &str) -> Option<&str> {
    let slug = file.strip_suffix(".svg")?;
    let well_formed = !slug.is_empty()
        && slug.len() <= 128
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    well_formed.then_some(slug)
}

/// The poster of the film `slug` titled `title`, as an SVG document.
pub fn svg(slug: &str, title: &str) -> String {
    // FNV's low bits barely move between similar slugs; a murmur-style
    // finaliser spreads them so neighbouring films get different hues.
    let mut hash = fnv1a(slug.as_bytes());
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    let hue = hash % 360;
    // The second hue sits 40°–120° away so the gradient is visible but calm.
    let second_hue = (hue + 40 + (hash >> 16) % 80) % 360;
    let lines = wrap(title, LINE_CHARS, MAX_LINES);
    let font_size = if lines.iter().any(|l| l.chars().count() > 11) {
        36
    } else {
        44
    };
    let line_height = font_size + 10;
    let block_height = line_height * lines.len() as u32;
    let first_baseline = HEIGHT / 2 - block_height / 2 + font_size;
    let text: String = lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            format!(
                r#"<tspan x="{x}" y="{y}">{line}</tspan>"#,
                x = WIDTH / 2,
                y = first_baseline + line_height * i as u32,
                line = xml_escape(line),
            )
        })
        .collect();
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{label}">
<defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1">
<stop offset="0" stop-color="hsl({hue},65%,38%)"/>
<stop offset="1" stop-color="hsl({second_hue},70%,14%)"/>
</linearGradient></defs>
<rect width="{WIDTH}" height="{HEIGHT}" fill="url(#g)"/>
<circle cx="{cx}" cy="120" r="150" fill="#fff" fill-opacity="0.06"/>
<circle cx="{cx2}" cy="520" r="190" fill="#000" fill-opacity="0.12"/>
<rect x="24" y="24" width="{inner_w}" height="{inner_h}" rx="10" fill="none" stroke="#fff" stroke-opacity="0.25" stroke-width="2"/>
<text font-family="system-ui,-apple-system,'Segoe UI',Roboto,sans-serif" font-weight="700" font-size="{font_size}" fill="#fff" text-anchor="middle">{text}</text>
<text x="{mid}" y="{footer_y}" font-family="system-ui,-apple-system,'Segoe UI',Roboto,sans-serif" font-size="18" letter-spacing="4" fill="#fff" fill-opacity="0.7" text-anchor="middle">BOOKMYSEAT</text>
</svg>"##,
        label = xml_escape(title),
        cx = 60 + hash % 280,
        cx2 = 60 + (hash >> 24) % 280,
        inner_w = WIDTH - 48,
        inner_h = HEIGHT - 48,
        mid = WIDTH / 2,
        footer_y = HEIGHT - 56,
    )
}

/// Splits `title` into at most `max_lines` lines of about `width` characters,
/// breaking between words (a word longer than a line is cut), and marks a
/// title that did not fit with an ellipsis.
fn wrap(title: &str, width: usize, max_lines: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut current = String::new();
    for word in title.split_whitespace() {
        let mut word: String = word.to_owned();
        // Cut words that cannot fit on any line.
        while word.chars().count() > width {
            if !current.is_empty() {
                lines.push(std::mem::take(&mut current));
            }
            let head: String = word.chars().take(width).collect();
            word = word.chars().skip(width).collect();
            lines.push(head);
        }
        let needed =
            current.chars().count() + usize::from(!current.is_empty()) + word.chars().count();
        if needed > width && !current.is_empty() {
            lines.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(&word);
    }
    if !current.is_empty() {
        lines.push(current);
    }
    if lines.is_empty() {
        lines.push("Untitled".to_owned());
    }
    if lines.len() > max_lines {
        lines.truncate(max_lines);
        if let Some(last) = lines.last_mut() {
            let kept: String = last.chars().take(width.saturating_sub(1)).collect();
            *last = format!("{kept}…");
        }
    }
    lines
}

fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_wrap_between_words() {
        assert_eq!(
            wrap("The Last Projectionist of Bombay", 14, 5),
            vec!["The Last", "Projectionist", "of Bombay"]
        );
    }

    #[test]
    fn overlong_titles_end_with_an_ellipsis() {
        let lines = wrap(&"word ".repeat(40), 14, 3);
        assert_eq!(lines.len(), 3);
        assert!(lines[2].ends_with('…'));
    }

    #[test]
    fn the_same_slug_always_gets_the_same_poster() {
        assert_eq!(svg("a-film", "A Film"), svg("a-film", "A Film"));
        assert_ne!(svg("a-film", "A Film"), svg("b-film", "A Film"));
    }

    #[test]
    fn titles_are_escaped() {
        let poster = svg("x", "<Tom & Jerry>");
        assert!(poster.contains("&lt;Tom &amp; Jerry&gt;"));
        assert!(!poster.contains("<Tom"));
    }

    #[test]
    fn only_svg_files_with_slugs_are_posters() {
        assert_eq!(slug_from_file_name("the-film.svg"), Some("the-film"));
        assert_eq!(slug_from_file_name("the-film.png"), None);
        assert_eq!(slug_from_file_name("../x.svg"), None);
        assert_eq!(slug_from_file_name(".svg"), None);
    }
}
