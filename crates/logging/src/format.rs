//! The one-line stderr format.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Formats an event as `TIME LEVEL component: span{fields}: message key=value`, on one line:
/// line breaks and other control characters inside messages and fields are escaped.
#[derive(Debug, Clone)]
pub struct LineFormat {
    component: String,
    with_time: bool,
}

impl LineFormat {
    /// A format that names `component` on every line.
    pub fn new(component: &str) -> LineFormat {
        LineFormat {
            component: component.to_owned(),
            with_time: true,
        }
    }

    /// Leaves the timestamp out (for tests that compare whole lines).
    pub fn without_time(mut self) -> LineFormat {
        self.with_time = false;
        self
    }
}

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        if self.with_time {
            SystemTime.format_time(&mut writer)?;
            writer.write_char(' ')?;
        }
        // A child's line relayed by the supervisor reads as the child wrote it, under the
        // child's name, not as the supervisor's own event.
        if event.metadata().target() == crate::capture::RELAY_TARGET {
            let mut relayed = Relayed::default();
            event.record(&mut relayed);
            if let Some(component) = relayed.component {
                let text = relayed.message.unwrap_or_default();
                let level = event.metadata().level();
                return writeln!(
                    writer,
                    "{level:>5} {}: {}",
                    Escaped(&component),
                    Escaped(&text)
                );
            }
        }

        write!(
            writer,
            "{:>5} {}: ",
            event.metadata().level(),
            self.component
        )?;

        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                writer.write_str(span.name())?;
                let extensions = span.extensions();
                if let Some(fields) = extensions.get::<FormattedFields<N>>()
                    && !fields.is_empty()
                {
                    write!(writer, "{{{fields}}}")?;
                }
                writer.write_str(": ")?;
            }
        }

        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

impl<'w> FormatFields<'w> for LineFormat {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut visitor = FieldWriter {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

/// Writes a message bare and other fields as `name=value`, separated by spaces.
struct FieldWriter<'w> {
    writer: Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl FieldWriter<'_> {
    fn write(&mut self, field: &Field, value: &str, quote_if_needed: bool) {
        if self.result.is_err() {
            return;
        }
        let separator = if self.first { "" } else { " " };
        self.first = false;
        self.result = if field.name() == "message" {
            write!(self.writer, "{separator}{}", Escaped(value))
        } else if quote_if_needed && (value.is_empty() || value.contains([' ', '"', '='])) {
            write!(self.writer, "{separator}{}={:?}", field.name(), value)
        } else {
            write!(
                self.writer,
                "{separator}{}={}",
                field.name(),
                Escaped(value)
            )
        };
    }
}

impl Visit for FieldWriter<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.write(field, value, true);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.write(field, &format!("{value:?}"), false);
    }
}

/// The fields of an event made by [`crate::relay`].
#[derive(Default)]
struct Relayed {
    component: Option<String>,
    message: Option<String>,
}

impl Visit for Relayed {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "component" => self.component = Some(value.to_owned()),
            "message" => self.message = Some(value.to_owned()),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            "component" => self.component = Some(format!("{value:?}")),
            "message" => self.message = Some(format!("{value:?}")),
            _ => {}
        }
    }
}

/// Text with line breaks and control characters escaped, so that it stays on one line.
struct Escaped<'a>(&'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            match c {
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_char(' ')?,
                c if c.is_control() => write!(f, "\\u{{{:x}}}", c as u32)?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}
