//! Provider keys never leave genq: an upstream that echoes the `Authorization` header in its
//! answer (some do, in 401 and 500 bodies) would otherwise put a key into `error.detail`, a
//! result, the database and the logs. Every configured key is replaced by `[redacted]` in what
//! genq keeps from a provider or an external worker.

use regex::Regex;
use serde_json::Value;
use std::borrow::Cow;

pub const REDACTED: &str = "[redacted]";

#[derive(Clone, Default)]
pub struct Redactor {
    /// Every key, longest first (so a key that contains another is replaced whole); `None`
    /// with no keys.
    keys: Option<Regex>,
}

impl Redactor {
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Redactor {
        let mut secrets: Vec<&str> = secrets.into_iter().filter(|s| !s.is_empty()).collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        if secrets.is_empty() {
            return Redactor::default();
        }
        let pattern = secrets
            .iter()
            .map(|s| regex::escape(s))
            .collect::<Vec<_>>()
            .join("|");
        Redactor {
            // Escaped literals always make a valid pattern; the size limit is raised for
            // configs with many long keys.
            keys: regex::RegexBuilder::new(&pattern)
                .size_limit(64 << 20)
                .build()
                .ok(),
        }
    }

    /// `text` with every key replaced.
    pub fn text<'t>(&self, text: &'t str) -> Cow<'t, str> {
        match &self.keys {
            Some(keys) => keys.replace_all(text, REDACTED),
            None => Cow::Borrowed(text),
        }
    }

    /// Every string in `value` (keys of objects too) with every key replaced.
    pub fn value(&self, value: &mut Value) {
        let Some(keys) = &self.keys else { return };
        match value {
            Value::String(s) => {
                if let Cow::Owned(clean) = keys.replace_all(s, REDACTED) {
                    *s = clean;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.value(v)),
            Value::Object(map) => {
                if map.keys().any(|k| keys.is_match(k)) {
                    let entries = std::mem::take(map);
                    for (k, v) in entries {
                        map.insert(self.text(&k).into_owned(), v);
                    }
                }
                map.values_mut().for_each(|v| self.value(v));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_key_is_replaced_wherever_it_appears() {
        let r = Redactor::new(["sk-live-abc123", "sk-live-abc123-long", "k2-xyz"]);
        assert_eq!(
            r.text("Authorization: Bearer sk-live-abc123-long; also k2-xyz and sk-live-abc123."),
            "Authorization: Bearer [redacted]; also [redacted] and [redacted]."
        );
        assert!(matches!(r.text("nothing here"), Cow::Borrowed(_)));
        let mut v = json!({"echo": {"headers": ["Bearer k2-xyz"], "k2-xyz": 1}, "n": 5});
        r.value(&mut v);
        assert_eq!(
            v,
            json!({"echo": {"headers": ["Bearer [redacted]"], "[redacted]": 1}, "n": 5})
        );
        // Regex metacharacters in a key are taken literally.
        let r = Redactor::new(["a.b*c"]);
        assert_eq!(r.text("a.b*c axbbc"), "[redacted] axbbc");
        assert_eq!(Redactor::new([]).text("a"), "a");
    }
}
