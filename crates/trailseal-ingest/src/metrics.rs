//! What an operator scrapes: per source, the lines sealed and unparsed, the
//! bytes not sealed yet (lag), the time of the last commit and the errors,
//! in Prometheus' text format on `GET /metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use trailseal::ingest::IngestStats;

/// The figures of one source (one file).
#[derive(Debug, Clone, Default)]
pub struct SourceFigures {
    /// The trail it is sealed into (empty while the format is not known).
    pub trail: String,
    /// What its follower counted since the service started.
    pub stats: IngestStats,
    /// Bytes in the file after the sealed position.
    pub lag_bytes: u64,
    /// Unix time of its last commit, in seconds.
    pub last_commit: Option<f64>,
    /// Failed polls since the service started.
    pub errors: u64,
    /// Whether its last poll failed.
    pub failing: bool,
}

/// Every source's figures, shared by the followers and the endpoint.
#[derive(Debug, Default)]
pub struct Metrics {
    sources: Mutex<BTreeMap<String, SourceFigures>>,
}

impl Metrics {
    /// Changes the figures of `source`.
    pub fn update(&self, source: &str, change: impl FnOnce(&mut SourceFigures)) {
        let mut sources = self.sources.lock().unwrap_or_else(PoisonError::into_inner);
        change(sources.entry(source.to_owned()).or_default());
    }

    /// A copy of the figures of every source.
    pub fn snapshot(&self) -> BTreeMap<String, SourceFigures> {
        self.sources
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The figures in Prometheus' text exposition format.
    pub fn render(&self) -> String {
        let sources = self.snapshot();
        let mut out = String::new();
        type Pick = fn(&SourceFigures) -> Option<f64>;
        let families: [(&str, &str, &str, Pick); 8] = [
            (
                "trailseal_ingest_lines_sealed_total",
                "counter",
                "Lines read and sealed (each line is one entry; unparsed ones included).",
                |f| Some(f.stats.lines as f64),
            ),
            (
                "trailseal_ingest_lines_unparsed_total",
                "counter",
                "Lines sealed as log.unparsed: no parser recognised them.",
                |f| Some(f.stats.unparsed as f64),
            ),
            (
                "trailseal_ingest_lines_invalid_utf8_total",
                "counter",
                "Lines that were not valid UTF-8 and were sealed decoded lossily.",
                |f| Some(f.stats.invalid_utf8 as f64),
            ),
            (
                "trailseal_ingest_bytes_sealed_total",
                "counter",
                "Bytes read and sealed, line breaks included.",
                |f| Some(f.stats.bytes as f64),
            ),
            (
                "trailseal_ingest_lag_bytes",
                "gauge",
                "Bytes in the file after the sealed position.",
                |f| Some(f.lag_bytes as f64),
            ),
            (
                "trailseal_ingest_last_commit_timestamp_seconds",
                "gauge",
                "Unix time of the last commit of lines of the file.",
                |f| f.last_commit,
            ),
            (
                "trailseal_ingest_errors_total",
                "counter",
                "Failed attempts to read or seal the file (retried).",
                |f| Some(f.errors as f64),
            ),
            (
                "trailseal_ingest_source_failing",
                "gauge",
                "1 while the last attempt to read or seal the file failed.",
                |f| Some(if f.failing { 1.0 } else { 0.0 }),
            ),
        ];
        for (name, kind, help, pick) in families {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (source, figures) in &sources {
                if let Some(value) = pick(figures) {
                    let _ = writeln!(
                        out,
                        "{name}{{source=\"{}\",trail=\"{}\"}} {value}",
                        label(source),
                        label(&figures.trail)
                    );
                }
            }
        }
        out
    }
}

/// A label value with backslash, double quote and line break escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Serves `GET /metrics` on `listener` until `stop` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(scrape))
        .with_state(metrics);
    axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
}

async fn scrape(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics.render(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_render_as_prometheus_text() {
        let metrics = Metrics::default();
        metrics.update("/var/log/a \"b\".log", |figures| {
            figures.trail = "web".to_owned();
            figures.stats.lines = 12;
            figures.stats.unparsed = 2;
            figures.lag_bytes = 300;
            figures.errors = 1;
        });
        let text = metrics.render();
        assert!(
            text.contains(
                "trailseal_ingest_lines_sealed_total{source=\"/var/log/a \\\"b\\\".log\",trail=\"web\"} 12\n"
            ),
            "{text}"
        );
        assert!(text.contains("# TYPE trailseal_ingest_lag_bytes gauge\n"));
        assert!(text.contains(
            "trailseal_ingest_lag_bytes{source=\"/var/log/a \\\"b\\\".log\",trail=\"web\"} 300\n"
        ));
        assert!(text.contains(
            "trailseal_ingest_errors_total{source=\"/var/log/a \\\"b\\\".log\",trail=\"web\"} 1\n"
        ));
        // No commit yet: no sample rather than a made-up time.
        assert!(!text.contains("trailseal_ingest_last_commit_timestamp_seconds{"));
    }
}
