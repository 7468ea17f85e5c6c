//! A copy of a process's own events, one line each, for a process that keeps its recent log
//! itself: the supervisor, so that `ctl logs supervisor` reads like the components' logs.

use std::io;
use std::sync::Arc;

use tracing::Subscriber;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::registry::LookupSpan;

use crate::LineFormat;
use crate::capture::RELAY_TARGET;

/// What gets each line: an event in [`LineFormat`], without its line ending.
pub type OwnLines = Arc<dyn Fn(&str) + Send + Sync>;

/// A layer that hands every event of this process to `sink`, formatted as on stderr. Events
/// relayed for a child ([`crate::relay`]) are left out: they are the child's, not ours.
pub fn layer<S>(component: &str, sink: OwnLines) -> impl Layer<S> + Send + Sync + 'static
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    tracing_subscriber::fmt::layer()
        .event_format(LineFormat::new(component))
        .fmt_fields(LineFormat::new(component))
        .with_writer(SinkWriter(sink))
        .with_filter(filter_fn(|meta| meta.target() != RELAY_TARGET))
}

/// The writer the fmt layer writes each formatted event to, in one `write_all`.
#[derive(Clone)]
struct SinkWriter(OwnLines);

impl io::Write for SinkWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        // LineFormat escapes line breaks, so one event is one line.
        for line in String::from_utf8_lossy(bytes).lines() {
            (self.0)(line);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for SinkWriter {
    type Writer = SinkWriter;

    fn make_writer(&'a self) -> SinkWriter {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[test]
    fn own_events_are_copied_and_childrens_relayed_lines_are_not() {
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let kept = Arc::clone(&lines);
        let sink: OwnLines = Arc::new(move |line| kept.lock().unwrap().push(line.to_owned()));
        let subscriber = tracing_subscriber::registry().with(layer("supervisor", sink));

        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(component = "mail", "started");
            crate::relay("mail", "2026-12-03T16:54:13.123456Z  INFO mail: accepted");
        });

        let lines = lines.lock().unwrap();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].ends_with(" INFO supervisor: started component=mail"),
            "{lines:?}"
        );
    }
}
