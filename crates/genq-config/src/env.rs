//! `GENQ_<SECTION>_<KEY>` environment overrides (SPEC §9): `GENQ_DATABASE`,
//! `GENQ_WORKER_CONCURRENCY`, `GENQ_USERS_DEFAULT_PLAN`. A value is read as a TOML value when it
//! parses as one (`25`, `true`, `["a", "b"]`) and as a string otherwise. Lists of tables
//! (`providers`, `kinds`) are set in the file only.

use std::collections::BTreeMap;

const TOP_LEVEL: [&str; 3] = ["mode", "listen", "database"];
const SECTIONS: [&str; 9] = [
    "auth", "worker", "users", "quota", "api", "metrics", "sentry", "sqlite", "postgres",
];

pub(crate) fn apply_overrides(
    table: &mut toml::Table,
    vars: &BTreeMap<String, String>,
) -> Result<(), (String, String)> {
    for (name, raw) in vars {
        let Some(rest) = name.strip_prefix("GENQ_") else {
            continue;
        };
        let rest = rest.to_ascii_lowercase();
        let value = parse_value(raw);
        if TOP_LEVEL.contains(&rest.as_str()) {
            table.insert(rest, value);
            continue;
        }
        let Some((section, key)) = rest.split_once('_') else {
            continue;
        };
        // Variables that are not overrides (GENQ_ADMIN_TOKEN read through `env:`) are left alone.
        if !SECTIONS.contains(&section) || key.is_empty() {
            continue;
        }
        let entry = table
            .entry(section.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        match entry {
            toml::Value::Table(t) => {
                t.insert(key.to_string(), value);
            }
            _ => return Err((name.clone(), format!("{section} is not a section"))),
        }
    }
    Ok(())
}

fn parse_value(raw: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}
