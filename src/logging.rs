//! Logs to stderr, filtered by `RUST_LOG` (default `m2s=info,warn`): plain lines for the
//! one-shot commands, logfmt lines (`ts=… level=… msg=… key=value…`) for the long-running
//! receiver, whose logs are read by machines.

use std::io::Write;

use log::kv::{Error, Key, Value, VisitSource};

pub(crate) fn init(structured: bool) {
    let mut builder = env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("m2s=info,warn"),
    );
    builder.format_target(false);
    if structured {
        builder.format(|buf, record| {
            let mut line = format!(
                "ts={} level={} msg={}",
                buf.timestamp_millis(),
                record.level().as_str().to_ascii_lowercase(),
                quoted(&record.args().to_string())
            );
            let _ = record.key_values().visit(&mut Pairs(&mut line));
            writeln!(buf, "{line}")
        });
    }
    builder.init();
}

struct Pairs<'a>(&'a mut String);

impl<'kvs> VisitSource<'kvs> for Pairs<'_> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), Error> {
        self.0.push(' ');
        self.0.push_str(key.as_str());
        self.0.push('=');
        self.0.push_str(&quoted(&value.to_string()));
        Ok(())
    }
}

/// A logfmt value: as it is when it is one plain word, else in double quotes with `"`, `\`
/// and line breaks escaped.
pub(crate) fn quoted(v: &str) -> String {
    let plain = !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '"' | '=' | '\\'));
    if plain {
        return v.to_string();
    }
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests;
