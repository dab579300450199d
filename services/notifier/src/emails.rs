//! What each event's email says: pure functions from an event to an
//! [`Email`], and from an [`Email`] to the MIME message a transport sends.
//!
//! Every email has a plain-text and an HTML part (`multipart/alternative`);
//! everything that came from an event is HTML-escaped before it goes into
//! the HTML part. The booking confirmation adds the booking reference as a
//! QR code (a PNG shown inline through `cid:`, in a `multipart/related`) and
//! the showtime as an `.ics` calendar file (an attachment). Times are shown in
//! the cinema's time zone, money in its currency with the currency's own
//! number of decimals.
//!
//! Nothing here does I/O, so the facts an email states are unit-tested here
//! and the wire format by the integration tests against a real SMTP server.

use std::str::FromStr as _;

use chrono::{DateTime, Utc};
use icalendar::{Calendar, Component as _, EventLike as _};
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use proto::events::v1 as events_pb;
use proto::time::from_timestamp;

/// Why an event cannot become an email. Retrying never helps: the event is
/// dead-lettered.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error("the event has no {0}")]
    Missing(&'static str),
    #[error("the recipient address is not a valid email address")]
    InvalidRecipient,
    #[error("the QR code cannot be made: {0}")]
    QrCode(String),
    #[error("bad content type {0}")]
    ContentType(String),
    #[error("the message cannot be built: {0}")]
    Build(#[from] lettre::error::Error),
}

/// Which email this is; stored with each delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmailKind {
    BookingConfirmed,
    BookingRejected,
    RefundSucceeded,
    PasswordReset,
}

impl EmailKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EmailKind::BookingConfirmed => "booking_confirmed",
            EmailKind::BookingRejected => "booking_rejected",
            EmailKind::RefundSucceeded => "refund_succeeded",
            EmailKind::PasswordReset => "password_reset",
        }
    }
}

/// A part carried beside the text: an inline image or a file.
#[derive(Clone, Debug)]
pub struct Enclosure {
    /// `Some(cid)` for an inline image the HTML shows with `cid:…`; `None`
    /// for an attachment.
    pub content_id: Option<String>,
    pub filename: String,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

/// One email, before it becomes MIME.
#[derive(Clone, Debug)]
pub struct Email {
    pub kind: EmailKind,
    pub to: Mailbox,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub enclosures: Vec<Enclosure>,
}

impl Email {
    /// The MIME message: `mixed[related[alternative[text, html], inline
    /// images], attachments]`, with only the layers that have content.
    pub fn to_message(
        &self,
        from: &Mailbox,
        message_id: String,
    ) -> Result<lettre::Message, ComposeError> {
        let mut body = MultiPart::alternative_plain_html(self.text.clone(), self.html.clone());
        let inline: Vec<&Enclosure> = self
            .enclosures
            .iter()
            .filter(|e| e.content_id.is_some())
            .collect();
        if !inline.is_empty() {
            let mut related = MultiPart::related().multipart(body);
            for image in inline {
                let cid = image.content_id.clone().unwrap_or_default();
                related = related.singlepart(
                    Attachment::new_inline_with_name(cid, image.filename.clone())
                        .body(image.body.clone(), content_type(image.content_type)?),
                );
            }
            body = related;
        }
        let files: Vec<SinglePart> = self
            .enclosures
            .iter()
            .filter(|e| e.content_id.is_none())
            .map(|file| {
                Ok(Attachment::new(file.filename.clone())
                    .body(file.body.clone(), content_type(file.content_type)?))
            })
            .collect::<Result<_, ComposeError>>()?;
        if !files.is_empty() {
            let mut mixed = MultiPart::mixed().multipart(body);
            for file in files {
                mixed = mixed.singlepart(file);
            }
            body = mixed;
        }
        Ok(lettre::Message::builder()
            .from(from.clone())
            .to(self.to.clone())
            .subject(self.subject.clone())
            .message_id(Some(message_id))
            .date_now()
            .multipart(body)?)
    }
}

fn content_type(value: &str) -> Result<ContentType, ComposeError> {
    ContentType::parse(value).map_err(|e| ComposeError::ContentType(format!("{value}: {e}")))
}

/// The content id of the QR code in the confirmation's HTML.
pub const QR_CONTENT_ID: &str = "booking-qr";

/// The booking confirmation: the facts of the booking, the reference as a
/// QR code, and the showtime as a calendar entry.
pub fn booking_confirmed(event: &events_pb::BookingConfirmed) -> Result<Email, ComposeError> {
    let to = recipient(&event.user_email, None)?;
    require(&event.reference, "booking reference")?;
    let starts_at = event
        .starts_at
        .as_ref()
        .and_then(from_timestamp)
        .ok_or(ComposeError::Missing("showtime start"))?;
    let when = local_time(starts_at, &event.cinema_time_zone);
    let seats = event.seats.join(", ");
    let paid = format_money(event.amount_minor, &event.currency);
    let facts = [
        ("Film", event.film_title.as_str()),
        ("Cinema", event.cinema_name.as_str()),
        ("Screen", event.screen_name.as_str()),
        ("Time", when.as_str()),
        ("Seats", seats.as_str()),
        ("Reference", event.reference.as_str()),
        ("Paid", paid.as_str()),
    ];
    let text = format!(
        "Your booking is confirmed.\n\n{}\n\
         Show the QR code in this email, or tell the reference, at the cinema.\n\
         The attached booking.ics adds the showtime to your calendar.\n\n\
         Enjoy the film!\nBookMySeat\n",
        text_table(&facts)
    );
    let html = html_page(
        "Your booking is confirmed",
        &format!(
            "{}\n<p><img src=\"cid:{QR_CONTENT_ID}\" alt=\"QR code of booking {}\" \
             width=\"174\" height=\"174\"></p>\n\
             <p>Show this QR code, or tell the reference, at the cinema. \
             The attached <code>booking.ics</code> adds the showtime to your calendar.</p>\n\
             <p>Enjoy the film!</p>",
            html_table(&facts),
            escape_html(&event.reference)
        ),
    );
    Ok(Email {
        kind: EmailKind::BookingConfirmed,
        to,
        subject: format!(
            "Booking {} confirmed: {}, {}",
            event.reference, event.film_title, when
        ),
        text,
        html,
        enclosures: vec![
            Enclosure {
                content_id: Some(QR_CONTENT_ID.to_owned()),
                filename: format!("booking-{}.png", event.reference),
                content_type: "image/png",
                body: qr_png(&event.reference)?,
            },
            Enclosure {
                content_id: None,
                filename: "booking.ics".to_owned(),
                content_type: "text/calendar; charset=utf-8; method=PUBLISH",
                body: calendar_entry(event, starts_at).into_bytes(),
            },
        ],
    })
}

/// The apology for a booking that could not be made after payment. The
/// refund itself follows as its own event and email.
pub fn booking_rejected(event: &events_pb::BookingRejected) -> Result<Email, ComposeError> {
    let to = recipient(&event.user_email, None)?;
    let seats = if event.unavailable_seats.is_empty() {
        "the seats you chose were".to_owned()
    } else {
        format!("seat(s) {} were", event.unavailable_seats.join(", "))
    };
    let sorry = format!(
        "We are sorry: your payment went through, but by then {seats} no longer available, \
         so we could not confirm your booking."
    );
    let refund = "We are refunding your payment in full. You do not need to do anything; \
                  we will email you again when the refund has been issued.";
    let text = format!(
        "{sorry}\n\n{refund}\n\nCheckout: {}\n\nPlease try another showtime or other seats.\nBookMySeat\n",
        event.checkout_id
    );
    let html = html_page(
        "We could not confirm your booking",
        &format!(
            "<p>{}</p>\n<p>{}</p>\n<p>Checkout: <code>{}</code></p>\n\
             <p>Please try another showtime or other seats.</p>",
            escape_html(&sorry),
            escape_html(refund),
            escape_html(&event.checkout_id)
        ),
    );
    Ok(Email {
        kind: EmailKind::BookingRejected,
        to,
        subject: "We could not confirm your booking: you will be refunded".to_owned(),
        text,
        html,
        enclosures: Vec::new(),
    })
}

/// The notice that a refund has been issued.
pub fn refund_succeeded(event: &events_pb::RefundSucceeded) -> Result<Email, ComposeError> {
    let to = recipient(&event.user_email, None)?;
    let amount = format_money(event.amount_minor, &event.currency);
    let mut facts = vec![("Amount", amount.as_str())];
    if !event.booking_reference.is_empty() {
        facts.push(("Booking", event.booking_reference.as_str()));
    }
    if !event.reason.is_empty() {
        facts.push(("Reason", event.reason.as_str()));
    }
    facts.push(("Refund", event.refund_id.as_str()));
    facts.push(("Checkout", event.checkout_id.as_str()));
    let lead = format!("We have refunded {amount} to the card you paid with.");
    let banks = "Banks usually take 5 to 10 working days to show it on your statement.";
    let text = format!("{lead}\n\n{}\n{banks}\n\nBookMySeat\n", text_table(&facts));
    let html = html_page(
        "Your refund is on its way",
        &format!(
            "<p>{}</p>\n{}\n<p>{}</p>",
            escape_html(&lead),
            html_table(&facts),
            escape_html(banks)
        ),
    );
    Ok(Email {
        kind: EmailKind::RefundSucceeded,
        to,
        subject: format!("Your refund of {amount} is on its way"),
        text,
        html,
        enclosures: Vec::new(),
    })
}

/// The password-reset link. The link carries a one-time token: it appears
/// in the email and nowhere else (not in logs, not in the deliveries table).
pub fn password_reset(event: &events_pb::PasswordResetRequested) -> Result<Email, ComposeError> {
    let name = (!event.display_name.is_empty()).then_some(event.display_name.as_str());
    let to = recipient(&event.email, name)?;
    require(&event.reset_url, "reset link")?;
    let expires_at = event
        .expires_at
        .as_ref()
        .and_then(from_timestamp)
        .ok_or(ComposeError::Missing("link expiry"))?;
    let occurred_at = event
        .meta
        .as_ref()
        .and_then(|m| m.occurred_at.as_ref())
        .and_then(from_timestamp);
    let expiry = match occurred_at {
        Some(at) if expires_at > at => format!(
            "{} (valid for {})",
            local_time(expires_at, "UTC"),
            describe_span(expires_at - at)
        ),
        _ => local_time(expires_at, "UTC"),
    };
    let greeting = match name {
        Some(name) => format!("Hello {name},"),
        None => "Hello,".to_owned(),
    };
    let text = format!(
        "{greeting}\n\nSomeone (hopefully you) asked to reset the password of your BookMySeat \
         account. Open this link to choose a new one:\n\n{}\n\nThe link works once and expires \
         {expiry}.\nIf you did not ask for this, ignore this email: your password stays as it is.\n\n\
         BookMySeat\n",
        event.reset_url
    );
    let html = html_page(
        "Reset your password",
        &format!(
            "<p>{}</p>\n<p>Someone (hopefully you) asked to reset the password of your BookMySeat \
             account.</p>\n<p><a href=\"{url}\">Choose a new password</a></p>\n\
             <p>The link works once and expires {}. If the button does not work, copy this \
             address into your browser:<br><code>{url}</code></p>\n\
             <p>If you did not ask for this, ignore this email: your password stays as it is.</p>",
            escape_html(&greeting),
            escape_html(&expiry),
            url = escape_html(&event.reset_url)
        ),
    );
    Ok(Email {
        kind: EmailKind::PasswordReset,
        to,
        subject: "Reset your BookMySeat password".to_owned(),
        text,
        html,
        enclosures: Vec::new(),
    })
}

fn require(value: &str, what: &'static str) -> Result<(), ComposeError> {
    if value.trim().is_empty() {
        Err(ComposeError::Missing(what))
    } else {
        Ok(())
    }
}

fn recipient(address: &str, name: Option<&str>) -> Result<Mailbox, ComposeError> {
    require(address, "recipient address")?;
    let email = address
        .trim()
        .parse()
        .map_err(|_| ComposeError::InvalidRecipient)?;
    Ok(Mailbox::new(name.map(str::to_owned), email))
}

/// `starts_at` in the named IANA time zone, e.g. "Saturday 28 November 2026,
/// 23:30 IST". An unknown zone falls back to UTC, said so by the "UTC".
pub fn local_time(at: DateTime<Utc>, time_zone: &str) -> String {
    const FORMAT: &str = "%A %-d %B %Y, %H:%M %Z";
    match chrono_tz::Tz::from_str(time_zone) {
        Ok(zone) => at.with_timezone(&zone).format(FORMAT).to_string(),
        Err(_) => at.format("%A %-d %B %Y, %H:%M UTC").to_string(),
    }
}

fn describe_span(span: chrono::TimeDelta) -> String {
    let minutes = span.num_minutes();
    match minutes {
        0..=1 => "1 minute".to_owned(),
        2..=119 => format!("{minutes} minutes"),
        _ if minutes < 48 * 60 => format!("{} hours", minutes / 60),
        _ => format!("{} days", minutes / (24 * 60)),
    }
}

/// Minor units for people, written exactly as the site writes them.
pub use platform::money::format as format_money;

/// Text safe to put between HTML tags or inside a quoted attribute.
pub fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            _ => escaped.push(c),
        }
    }
    escaped
}

/// An address as logs may show it: "a***@example.com".
pub fn mask_email(address: &str) -> String {
    match address.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".to_owned(),
    }
}

fn text_table(facts: &[(&str, &str)]) -> String {
    let width = facts
        .iter()
        .map(|(label, _)| label.len())
        .max()
        .unwrap_or(0)
        + 1;
    facts
        .iter()
        .map(|(label, value)| format!("{:<width$} {value}\n", format!("{label}:")))
        .collect()
}

fn html_table(facts: &[(&str, &str)]) -> String {
    let rows: String = facts
        .iter()
        .map(|(label, value)| {
            format!(
                "<tr><th style=\"text-align:left;padding:4px 16px 4px 0\">{}</th><td>{}</td></tr>\n",
                escape_html(label),
                escape_html(value)
            )
        })
        .collect();
    format!("<table>\n{rows}</table>")
}

fn html_page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\n\
         <body style=\"font-family:sans-serif;color:#222\">\n<h1 style=\"font-size:20px\">{title}</h1>\n\
         {body}\n<p style=\"color:#777\">BookMySeat</p>\n</body></html>\n",
        title = escape_html(title)
    )
}

/// The reference as a QR code: a 1-bit greyscale PNG, 6 pixels a module
/// with the standard 4-module quiet zone. One bit a pixel rather than a
/// byte: the encoder compresses an eighth of the data, which was most of
/// the notifier's CPU for a confirmation, and the file is smaller.
pub fn qr_png(text: &str) -> Result<Vec<u8>, ComposeError> {
    const SCALE: usize = 6;
    const QUIET: usize = 4;
    let code =
        qrcode::QrCode::new(text.as_bytes()).map_err(|e| ComposeError::QrCode(e.to_string()))?;
    let modules = code.width();
    let colors = code.to_colors();
    let side = (modules + 2 * QUIET) * SCALE;
    // Bits set are white; each row starts on a byte boundary.
    let stride = side.div_ceil(8);
    let mut pixels = vec![0xffu8; side * stride];
    for (index, color) in colors.iter().enumerate() {
        if *color != qrcode::Color::Dark {
            continue;
        }
        let (x, y) = (index % modules + QUIET, index / modules + QUIET);
        for row in y * SCALE..(y + 1) * SCALE {
            for column in x * SCALE..(x + 1) * SCALE {
                pixels[row * stride + column / 8] &= !(0x80 >> (column % 8));
            }
        }
    }
    let mut png_bytes = Vec::new();
    let side = u32::try_from(side).map_err(|e| ComposeError::QrCode(e.to_string()))?;
    let mut encoder = png::Encoder::new(&mut png_bytes, side, side);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::One);
    // fdeflate: the default (miniz) compressor zeroes its large tables for
    // every image, more work than compressing a small 1-bit QR code takes.
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder
        .write_header()
        .map_err(|e| ComposeError::QrCode(e.to_string()))?;
    writer
        .write_image_data(&pixels)
        .map_err(|e| ComposeError::QrCode(e.to_string()))?;
    writer
        .finish()
        .map_err(|e| ComposeError::QrCode(e.to_string()))?;
    Ok(png_bytes)
}

/// The showtime as an iCalendar entry. The event does not carry the film's
/// running time, so the entry has a start and no end (RFC 5545: it then
/// ends when it starts); the UID is the booking's, so importing the file
/// twice updates one entry.
fn calendar_entry(event: &events_pb::BookingConfirmed, starts_at: DateTime<Utc>) -> String {
    let summary = format!("{} (BookMySeat {})", event.film_title, event.reference);
    let location = [event.cinema_name.as_str(), event.screen_name.as_str()]
        .iter()
        .filter(|part| !part.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    let description = format!(
        "Seats {}. Booking reference {}.",
        event.seats.join(", "),
        event.reference
    );
    let uid = if event.booking_id.is_empty() {
        format!("{}@bookmyseat", event.reference)
    } else {
        format!("{}@bookmyseat", event.booking_id)
    };
    let entry = icalendar::Event::new()
        .uid(&uid)
        .summary(&summary)
        .location(&location)
        .description(&description)
        .starts(starts_at)
        .done();
    Calendar::new()
        .name("BookMySeat")
        .push(entry)
        .done()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;
    use proto::time::to_timestamp;

    #[test]
    fn the_qr_png_shows_every_module_of_the_code_with_a_white_quiet_zone() {
        let png_bytes = qr_png("BMS-7Q2XK4").unwrap();
        let mut reader = png::Decoder::new(std::io::Cursor::new(png_bytes))
            .read_info()
            .unwrap();
        let mut packed = vec![0; reader.output_buffer_size().unwrap()];
        let frame = reader.next_frame(&mut packed).unwrap();
        assert_eq!(frame.bit_depth, png::BitDepth::One);
        let side = frame.width as usize;
        assert_eq!(frame.height as usize, side);
        let white =
            |x: usize, y: usize| packed[y * frame.line_size + x / 8] & (0x80 >> (x % 8)) != 0;

        let code = qrcode::QrCode::new(b"BMS-7Q2XK4").unwrap();
        let modules = code.width();
        assert_eq!(
            side,
            (modules + 8) * 6,
            "6 pixels a module, 4 modules of margin"
        );
        for (index, color) in code.to_colors().iter().enumerate() {
            // The centre pixel of each module.
            let (x, y) = ((index % modules + 4) * 6 + 3, (index / modules + 4) * 6 + 3);
            assert_eq!(
                white(x, y),
                *color == qrcode::Color::Light,
                "module {index} at ({x}, {y})"
            );
        }
        for i in 0..side {
            for margin in [0, 23, side - 1] {
                assert!(
                    white(i, margin) && white(margin, i),
                    "the quiet zone is white"
                );
            }
        }
    }

    #[test]
    fn money_is_formatted_as_the_site_formats_it() {
        assert_eq!(format_money(123_456, "INR"), "₹1,234.56");
        assert_eq!(format_money(50_000, "inr"), "₹500");
        assert_eq!(format_money(12_500_000, "INR"), "₹1,25,000");
        assert_eq!(format_money(5, "USD"), "USD 0.05");
        assert_eq!(format_money(1_500, "JPY"), "JPY 1,500");
        assert_eq!(format_money(1_234, "KWD"), "KWD 1.234");
        assert_eq!(format_money(-1_250, "EUR"), "-EUR 12.50");
        assert_eq!(format_money(100_000_000, "GBP"), "GBP 1,000,000");
    }

    #[test]
    fn time_is_shown_in_the_cinemas_zone() {
        let at = Utc.with_ymd_and_hms(2026, 11, 28, 18, 0, 0).unwrap();
        assert_eq!(
            local_time(at, "Asia/Kolkata"),
            "Saturday 28 November 2026, 23:30 IST"
        );
        assert_eq!(
            local_time(at, "Europe/London"),
            "Saturday 28 November 2026, 18:00 GMT"
        );
        assert_eq!(
            local_time(at, "Not/AZone"),
            "Saturday 28 November 2026, 18:00 UTC"
        );
    }

    #[test]
    fn html_is_escaped_and_emails_masked() {
        assert_eq!(
            escape_html("<b>\"Tom & Jerry's\"</b>"),
            "&lt;b&gt;&quot;Tom &amp; Jerry&#39;s&quot;&lt;/b&gt;"
        );
        assert_eq!(mask_email("ada@example.com"), "a***@example.com");
        assert_eq!(mask_email("nonsense"), "***");
    }

    fn confirmed() -> events_pb::BookingConfirmed {
        events_pb::BookingConfirmed {
            booking_id: "0b5c1f0e-5d3a-4d38-9e8e-5a9f6f2b6a11".into(),
            reference: "BMS7Q2".into(),
            user_email: "ada@example.com".into(),
            film_title: "Tom & Jerry".into(),
            cinema_name: "Roxy".into(),
            cinema_time_zone: "Asia/Kolkata".into(),
            screen_name: "Screen 1".into(),
            starts_at: Some(to_timestamp(
                Utc.with_ymd_and_hms(2026, 11, 28, 18, 0, 0).unwrap(),
            )),
            seats: vec!["A1".into(), "A2".into()],
            amount_minor: 50_000,
            currency: "INR".into(),
            ..Default::default()
        }
    }

    #[test]
    fn confirmation_states_the_booking_and_carries_qr_and_calendar() {
        let email = booking_confirmed(&confirmed()).unwrap();
        assert!(email.text.contains("Tom & Jerry"));
        assert!(email.html.contains("Tom &amp; Jerry"));
        assert!(!email.html.contains("Tom & Jerry"));
        for fact in ["23:30 IST", "A1, A2", "BMS7Q2", "₹500", "Screen 1"] {
            assert!(email.text.contains(fact), "{fact} missing from the text");
        }
        let png = &email.enclosures[0];
        assert_eq!(png.content_id.as_deref(), Some(QR_CONTENT_ID));
        assert!(png.body.starts_with(b"\x89PNG\r\n\x1a\n"));
        let ics = String::from_utf8(email.enclosures[1].body.clone()).unwrap();
        assert!(ics.contains("BEGIN:VEVENT"));
        assert!(ics.contains("DTSTART:20261128T180000Z"));
        assert!(ics.contains("UID:0b5c1f0e-5d3a-4d38-9e8e-5a9f6f2b6a11@bookmyseat"));
    }

    #[test]
    fn an_event_without_a_usable_recipient_cannot_become_an_email() {
        let mut event = confirmed();
        event.user_email = String::new();
        assert!(matches!(
            booking_confirmed(&event),
            Err(ComposeError::Missing(_))
        ));
        event.user_email = "not an address".into();
        assert!(matches!(
            booking_confirmed(&event),
            Err(ComposeError::InvalidRecipient)
        ));
    }
}
