//! Writing CSV that spreadsheets open safely: RFC 4180 quoting plus a guard
//! against formula injection.
//!
//! A field containing a comma, a double quote, a carriage return or a line
//! feed is wrapped in quotes with its quotes doubled. A field a spreadsheet
//! would take for a formula (starting with `=`, `+`, `-` or `@`, or with a
//! tab or carriage return that some spreadsheets skip first) gets a leading
//! `'`, OWASP's advice: a film titled `=HYPERLINK(…)` stays text. The guard
//! applies to every field, so a negative number would come out as text too;
//! the bookings export only writes non-negative amounts. Rows end with CRLF.

/// A CSV document being written, row by row.
#[derive(Debug, Default)]
pub struct CsvWriter {
    out: String,
}

impl CsvWriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one row.
    pub fn row<I, S>(&mut self, fields: I)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        for (i, field) in fields.into_iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            push_field(&mut self.out, field.as_ref());
        }
        self.out.push_str("\r\n");
    }

    /// The document written so far.
    pub fn finish(self) -> String {
        self.out
    }
}

/// Whether a spreadsheet would read `field` as a formula.
fn looks_like_formula(field: &str) -> bool {
    field.starts_with(['=', '+', '-', '@', '\t', '\r'])
}

fn push_field(out: &mut String, field: &str) {
    let guarded;
    let field = if looks_like_formula(field) {
        guarded = format!("'{field}");
        guarded.as_str()
    } else {
        field
    };
    if field.contains([',', '"', '\r', '\n']) {
        out.push('"');
        out.push_str(&field.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(field);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(fields: &[&str]) -> String {
        let mut csv = CsvWriter::new();
        csv.row(fields);
        csv.finish()
    }

    #[test]
    fn plain_fields_are_written_as_they_are() {
        assert_eq!(
            line(&["BMS-7Q2X", "Dune", "50000"]),
            "BMS-7Q2X,Dune,50000\r\n"
        );
        assert_eq!(line(&["", "x"]), ",x\r\n");
    }

    #[test]
    fn fields_with_commas_quotes_or_newlines_are_quoted() {
        assert_eq!(line(&["E5, E6"]), "\"E5, E6\"\r\n");
        assert_eq!(line(&["The \"Big\" One"]), "\"The \"\"Big\"\" One\"\r\n");
        assert_eq!(line(&["two\nlines"]), "\"two\nlines\"\r\n");
        assert_eq!(line(&["cr\rhere"]), "\"cr\rhere\"\r\n");
    }

    #[test]
    fn formula_like_fields_are_kept_as_text() {
        for formula in ["=1+1", "+1", "-1", "@SUM(A1)", "\tx"] {
            assert_eq!(line(&[formula]), format!("'{formula}\r\n"), "{formula:?}");
        }
        // Guarded and quoted when both apply.
        assert_eq!(
            line(&["=HYPERLINK(\"http://x\",\"a\")"]),
            "\"'=HYPERLINK(\"\"http://x\"\",\"\"a\"\")\"\r\n"
        );
        // Only the start matters.
        assert_eq!(line(&["a=b-c"]), "a=b-c\r\n");
    }

    #[test]
    fn every_row_ends_with_crlf() {
        let mut csv = CsvWriter::new();
        csv.row(["a", "b"]);
        csv.row(["c", "d"]);
        assert_eq!(csv.finish(), "a,b\r\nc,d\r\n");
    }
}
