//! Results as a table for people or JSON for scripts.
//!
//! Each measured run becomes one [`Row`]: requests, errors, correct answers
//! per second and latency percentiles in milliseconds. Scenarios add their
//! own verdict lines (the browse scenario's gateway-hop cost) under the
//! table; the JSON form carries the same numbers under the same names.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::closed_loop::Measurement;

/// One endpoint measured at one concurrency level.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// Short machine name, e.g. `gateway-list`.
    pub endpoint: &'static str,
    /// What was sent, for people, e.g. `gateway GET /api/v1/movies`.
    pub request: String,
    pub concurrency: usize,
    /// Counted requests, errors included.
    pub requests: u64,
    pub errors: u64,
    /// Counted requests refused as the scenario expects (seats taken), not
    /// errors and not in the latency percentiles.
    #[serde(skip_serializing_if = "is_zero")]
    pub refused: u64,
    /// Length of the measured window.
    pub seconds: f64,
    /// Correct answers per second.
    pub requests_per_second: f64,
    /// Refusals per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused_per_second: Option<f64>,
    /// Median and 99th-percentile latency of the refusals.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused_p50_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused_p99_ms: Option<f64>,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Each distinct error message with its count.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub error_kinds: BTreeMap<String, u64>,
    /// CPU microseconds per request spent by each process (and the whole
    /// machine) during the measured window.
    pub cpu_per_request: Vec<CpuShare>,
}

/// One process's CPU cost per request.
#[derive(Clone, Debug, Serialize)]
pub struct CpuShare {
    pub process: String,
    pub microseconds: f64,
}

impl Row {
    pub fn new(
        endpoint: &'static str,
        request: String,
        concurrency: usize,
        measured: &Measurement,
    ) -> Self {
        let ms = |micros: u64| micros as f64 / 1_000.0;
        let quantile = |q: f64| ms(measured.latency.value_at_quantile(q));
        Self {
            endpoint,
            request,
            concurrency,
            requests: measured.ok + measured.errors + measured.refused,
            errors: measured.errors,
            refused: measured.refused,
            seconds: measured.window.as_secs_f64(),
            requests_per_second: measured.rate(),
            refused_per_second: (measured.refused > 0).then(|| measured.refused_rate()),
            refused_p50_ms: (measured.refused > 0)
                .then(|| ms(measured.refused_latency.value_at_quantile(0.50))),
            refused_p99_ms: (measured.refused > 0)
                .then(|| ms(measured.refused_latency.value_at_quantile(0.99))),
            p50_ms: quantile(0.50),
            p95_ms: quantile(0.95),
            p99_ms: quantile(0.99),
            max_ms: ms(measured.latency.max()),
            error_kinds: measured.error_kinds.clone(),
            cpu_per_request: measured
                .cpu_per_request()
                .into_iter()
                .map(|(process, microseconds)| CpuShare {
                    process,
                    microseconds,
                })
                .collect(),
        }
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Prints `rows` as an aligned table, then the errors seen, if any. When
/// any row saw refusals, they get their own lines under the table.
pub fn print_table(rows: &[Row]) {
    let width = rows
        .iter()
        .map(|r| r.request.len())
        .max()
        .unwrap_or(0)
        .max("request".len());
    println!(
        "{:<width$}  {:>5}  {:>10}  {:>7}  {:>9}  {:>8}  {:>8}  {:>8}  {:>8}",
        "request", "conc", "requests", "errors", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms"
    );
    for row in rows {
        println!(
            "{:<width$}  {:>5}  {:>10}  {:>7}  {:>9}  {:>8.2}  {:>8.2}  {:>8.2}  {:>8.2}",
            row.request,
            row.concurrency,
            thousands(row.requests),
            thousands(row.errors),
            thousands(row.requests_per_second.round() as u64),
            row.p50_ms,
            row.p95_ms,
            row.p99_ms,
            row.max_ms,
        );
    }
    print_refusals(rows, width);
    print_cpu_table(rows, width);
    for row in rows.iter().filter(|r| r.errors > 0) {
        println!(
            "errors in {} at concurrency {}:",
            row.request, row.concurrency
        );
        for (kind, count) in &row.error_kinds {
            println!("  {count:>9} × {kind}");
        }
    }
}

/// Refusals (`Done::Refused`) per row, when there were any.
fn print_refusals(rows: &[Row], width: usize) {
    if rows.iter().all(|r| r.refused == 0) {
        return;
    }
    println!("\nRefused (seats taken; neither errors nor in the percentiles above):");
    println!(
        "{:<width$}  {:>5}  {:>10}  {:>9}  {:>8}  {:>8}",
        "request", "conc", "refused", "per s", "p50 ms", "p99 ms"
    );
    for row in rows {
        let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"));
        println!(
            "{:<width$}  {:>5}  {:>10}  {:>9}  {:>8}  {:>8}",
            row.request,
            row.concurrency,
            thousands(row.refused),
            thousands(row.refused_per_second.unwrap_or(0.0).round() as u64),
            ms(row.refused_p50_ms),
            ms(row.refused_p99_ms),
        );
    }
}

/// CPU per request, one column per process, in the order first seen.
fn print_cpu_table(rows: &[Row], width: usize) {
    let mut processes: Vec<&str> = Vec::new();
    for share in rows.iter().flat_map(|r| &r.cpu_per_request) {
        if !processes.contains(&share.process.as_str()) {
            processes.push(&share.process);
        }
    }
    if processes.is_empty() {
        return;
    }
    println!("\nCPU time per request, µs (user + system, measured window):");
    print!("{:<width$}  {:>5}", "request", "conc");
    for process in &processes {
        print!("  {process:>9}");
    }
    println!();
    for row in rows {
        print!("{:<width$}  {:>5}", row.request, row.concurrency);
        for process in &processes {
            match row.cpu_per_request.iter().find(|s| s.process == *process) {
                Some(share) => print!("  {:>9.1}", share.microseconds),
                None => print!("  {:>9}", "-"),
            }
        }
        println!();
    }
}

/// A latency in the microseconds the histograms count (saturating).
pub fn micros(latency: std::time::Duration) -> u64 {
    u64::try_from(latency.as_micros()).unwrap_or(u64::MAX)
}

/// `61234` → `61,234`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(61_234), "61,234");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
