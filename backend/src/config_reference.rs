//! The configuration reference, `docs/configuration.md`, generated from the code so that it
//! cannot drift from what the bridge accepts:
//! - the keys, their nesting and their order are serde's, probed the way `check-config` loads a
//!   file (figment: the defaults, then TOML): a table answers an unknown key with the list of
//!   the keys it knows;
//! - their types, serde defaults and meanings come from the settings types' JSON schema
//!   (`schemars`, derived in test builds only: the doc comments of the fields);
//! - the default of a key outside an array is what loading starts from (`Settings::default()`);
//! - whether a key reloads live comes from [`crate::reload::KEPT`], the reload's own list;
//! - its environment variable follows the loader's rule (`BRIDGE_` + the path, `__` between
//!   levels).
//!
//! Test-only: `the_configuration_reference_is_what_the_code_says` compares the file with the
//! text generated here (`UPDATE_CONFIG_REFERENCE=1` writes it), and
//! `the_configuration_reference_lists_every_key_check_config_accepts_with_its_meaning` fails
//! when a key has no doc comment or is missing from the file.

use std::fmt::Write as _;

use figment::{
    Figment,
    providers::{Format, Serialized, Toml},
};
use serde_json::Value;

use crate::{reload::KEPT, settings::Settings};

/// Where the reference lives, from the backend package.
const REFERENCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/configuration.md");

/// How to bring the file up to date; printed when it differs.
const REGENERATE: &str =
    "UPDATE_CONFIG_REFERENCE=1 cargo test -p login-bridge --lib config_reference";

/// A key no settings type has: every table answers it with the keys it knows.
const PROBE: &str = "__probe__";

/// One step of a key's path: a table, or an array of tables (`[[issuers]]`).
#[derive(Clone, Copy)]
struct Step {
    name: &'static str,
    array: bool,
}

/// One table of the configuration (the top level, `[oidc]`, `[[issuers]]`, `[issuers.claims]`...).
struct Table {
    path: Vec<Step>,
    /// The schema of the table's type (its properties).
    schema: Value,
    /// The field that holds it, in its parent's schema (its doc comment).
    field: Value,
    /// Its keys in serde's order: leaves, and tables (listed on their own).
    keys: Vec<Key>,
}

struct Key {
    name: &'static str,
    /// The field's schema in its table's.
    schema: Value,
    /// Whether the key is itself a table (or array of tables), documented in its own section.
    table: bool,
}

/// The TOML that opens the table at `path` (`[[issuers]]` then `[issuers.claims]`).
fn headers(path: &[Step]) -> String {
    let mut doc = String::new();
    for i in 0..path.len() {
        let name = path[..=i]
            .iter()
            .map(|s| s.name)
            .collect::<Vec<_>>()
            .join(".");
        if path[i].array {
            let _ = writeln!(doc, "[[{name}]]");
        } else {
            let _ = writeln!(doc, "[{name}]");
        }
    }
    doc
}

/// The keys the table at `path` knows, as serde lists them when it meets an unknown one; `None`
/// when there is no table there (a value, a list or a free map).
fn probe(path: &[Step]) -> Option<&'static [&'static str]> {
    let doc = format!("{}{PROBE} = 1\n", headers(path));
    let Err(error) = Figment::from(Serialized::defaults(Settings::default()))
        .merge(Toml::string(&doc))
        .extract::<Settings>()
    else {
        return None;
    };
    error.into_iter().find_map(|e| match e.kind {
        figment::error::Kind::UnknownField(found, expected) if found == PROBE => Some(expected),
        _ => None,
    })
}

/// The schema `value` stands for: `$ref`s followed, `Option`'s null dropped, a list's items.
fn target<'a>(value: &'a Value, defs: &'a Value) -> &'a Value {
    if let Some(name) = value["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/$defs/"))
    {
        return target(&defs[name], defs);
    }
    if let Some(variants) = value["anyOf"].as_array()
        && let Some(some) = variants.iter().find(|v| v["type"] != "null")
    {
        return target(some, defs);
    }
    if is_list(value) {
        return target(&value["items"], defs);
    }
    value
}

/// Every table of the configuration, the top level first, each followed by its sub-tables.
fn tables(root: &Value) -> Vec<Table> {
    let defs = &root["$defs"];
    let mut out = Vec::new();
    walk(Vec::new(), root.clone(), Value::Null, defs, &mut out);
    out
}

fn walk(path: Vec<Step>, schema: Value, field: Value, defs: &Value, out: &mut Vec<Table>) {
    let Some(names) = probe(&path) else {
        return;
    };
    let mut keys = Vec::new();
    let mut nested = Vec::new();
    for &name in names {
        let key_schema = schema["properties"][name].clone();
        let inner = target(&key_schema, defs).clone();
        let sub = [false, true].into_iter().find_map(|array| {
            let mut p = path.clone();
            p.push(Step { name, array });
            probe(&p).map(|_| p)
        });
        keys.push(Key {
            name,
            schema: key_schema.clone(),
            table: sub.is_some(),
        });
        if let Some(p) = sub {
            nested.push((p, inner, key_schema));
        }
    }
    out.push(Table {
        path,
        schema,
        field,
        keys,
    });
    for (p, inner, key_schema) in nested {
        walk(p, inner, key_schema, defs, out);
    }
}

/// `issuers.claims`: the dotted name of a path, as `KEPT` and the problems write it.
fn dotted(path: &[Step]) -> String {
    path.iter().map(|s| s.name).collect::<Vec<_>>().join(".")
}

/// The section's heading: `[oidc]`, `[[issuers]]`, `[issuers.claims]`.
fn heading(path: &[Step]) -> String {
    match path.last() {
        None => "Top level".to_owned(),
        Some(last) if last.array => format!("`[[{}]]`", dotted(path)),
        Some(_) => format!("`[{}]`", dotted(path)),
    }
}

/// A doc comment as one line of a table cell.
fn one_line(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

fn description(schema: &Value) -> Option<&str> {
    schema["description"]
        .as_str()
        .filter(|d| !d.trim().is_empty())
}

/// A type's doc comment without the section name it starts with in the code (`` `[ui]`: ``,
/// ``One `[[upstreams]]` entry: ``): the heading says it.
fn without_heading(text: &str) -> String {
    let Ok(name) = regex::Regex::new(r"^(One |A )?`\[\[?[a-z_.]+\]\]?`( entry| rule)?(: |\.\s*|$)")
    else {
        return text.to_owned();
    };
    let rest = name.replace(text, "");
    let mut chars = rest.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// A value as it is written in TOML.
fn toml_value(value: &Value) -> String {
    match value {
        // An empty string is how an absent secret or name is held.
        Value::Null => "not set".to_owned(),
        Value::String(s) if s.is_empty() => "not set".to_owned(),
        Value::String(s) => format!("`{s:?}`"),
        Value::Array(items) if items.is_empty() => "`[]`".to_owned(),
        Value::Object(map) if map.is_empty() => "`{}`".to_owned(),
        other => format!("`{}`", inline(other)),
    }
}

fn inline(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(inline).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => format!(
            "{{ {} }}",
            map.iter()
                .map(|(k, v)| format!("{k} = {}", inline(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

/// `Option<T>`'s schema without its null.
fn non_null(schema: &Value) -> &Value {
    schema["anyOf"]
        .as_array()
        .and_then(|v| v.iter().find(|s| s["type"] != "null"))
        .unwrap_or(schema)
}

fn is_list(schema: &Value) -> bool {
    schema["type"] == "array"
        || schema["type"]
            .as_array()
            .is_some_and(|t| t.contains(&"array".into()))
}

/// The type of a key, in words.
fn type_name(schema: &Value, defs: &Value) -> String {
    let schema = non_null(schema);
    if is_list(schema) {
        let item = type_name(&schema["items"], defs);
        return match item.as_str() {
            "string" | "integer" | "path" | "URL" | "CIDR" => format!("list of {item}s"),
            _ => format!("list of {item}"),
        };
    }
    single_type(target(schema, defs), defs)
}

fn single_type(t: &Value, defs: &Value) -> String {
    if let Some(values) = t["enum"].as_array() {
        return values
            .iter()
            .map(|v| format!("`{}`", v.as_str().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(" or ");
    }
    if let Some(variants) = t["oneOf"].as_array() {
        return variants
            .iter()
            .map(|v| format!("`{}`", v["const"].as_str().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(" or ");
    }
    let kind = match &t["type"] {
        Value::Array(kinds) => kinds
            .iter()
            .find(|k| *k != "null")
            .cloned()
            .unwrap_or(Value::Null),
        other => other.clone(),
    };
    match kind.as_str() {
        Some("string") => match t["format"].as_str() {
            Some("uri") => "URL".to_owned(),
            Some("cidr") => "CIDR".to_owned(),
            Some("path") => "path".to_owned(),
            Some("socket-address") => "address".to_owned(),
            _ => "string".to_owned(),
        },
        Some("integer") => "integer".to_owned(),
        Some("boolean") => "boolean".to_owned(),
        Some("object") => match &t["additionalProperties"] {
            Value::Object(v) if !v.is_empty() => {
                format!(
                    "table of {}",
                    single_type(target(&t["additionalProperties"], defs), defs)
                )
            }
            _ => "table".to_owned(),
        },
        _ => "any".to_owned(),
    }
}

/// The meanings of an enum's values, where they have doc comments.
fn variants(schema: &Value, defs: &Value) -> String {
    target(schema, defs)["oneOf"]
        .as_array()
        .map(|variants| {
            variants
                .iter()
                .filter_map(|v| {
                    Some(format!(
                        " `{}`: {}",
                        v["const"].as_str()?,
                        one_line(description(v)?)
                    ))
                })
                .collect::<String>()
        })
        .unwrap_or_default()
}

/// Whether a reload (SIGHUP) applies the key, from the reload's own list.
fn reloads_live(path: &str) -> bool {
    !KEPT
        .iter()
        .any(|kept| path == *kept || path.starts_with(&format!("{kept}.")))
}

/// The reference, as `docs/configuration.md` holds it.
pub fn generate() -> String {
    let root = serde_json::to_value(schemars::schema_for!(Settings)).unwrap_or_default();
    let defs = &root["$defs"];
    let defaults = serde_json::to_value(Settings::default()).unwrap_or_default();
    let tables = tables(&root);
    // The keys the defaults alone leave unusable (the provider, the client): required.
    let unset = match Settings::default().validate() {
        Err(crate::settings::SettingsError::Invalid(problems)) => problems,
        _ => Vec::new(),
    };
    let mut doc = String::new();
    let _ = write!(
        doc,
        "# Configuration reference\n\n\
         <!-- Generated from the settings types (backend/src/settings/, doc comments included) by\n     \
         `{REGENERATE}`.\n     Do not edit: the test fails when this file differs from what the code says. -->\n\n\
         The bridge reads its defaults, then the TOML file (`login-bridge --config FILE`), then\n\
         environment variables. `login-bridge check-config --config FILE` loads and checks a\n\
         configuration and prints it with secrets masked; an unknown key is an error, and every\n\
         problem is listed at once with the key's name.\n\n\
         - **Environment:** `BRIDGE_` and the key's path in capitals, `__` between levels:\n  \
         `oidc.client_secret` is `BRIDGE_OIDC__CLIENT_SECRET`. A value is read as TOML would read it\n  \
         (`true`, `30`, a list `[\"openid\", \"email\"]`, an inline table `{{ key = \"value\" }}`), else as a\n  \
         string. An array of tables (`[[issuers]]`, `[[upstreams]]`...) is one variable holding the\n  \
         whole list as an inline array, which replaces the file's list:\n  \
         `BRIDGE_UPSTREAMS='[{{ prefix = \"/pi/\", url = \"http://pi.internal:5000\" }}]'`; a key of one\n  \
         entry cannot be set on its own.\n\
         - **Reload:** on `SIGHUP` (`systemctl reload`) the bridge reads the file and the environment\n  \
         again ([reload.md](reload.md)). Keys marked *live* take effect for the next request; keys\n  \
         marked *restart* keep their running value until the bridge restarts (a reload that changes\n  \
         one says so in the log). A configuration with a problem is refused whole.\n\
         - **Default:** what applies when the key is absent; *required* keys have none.\n\n"
    );
    doc.push_str("Sections:");
    for (i, table) in tables.iter().enumerate() {
        let h = heading(&table.path);
        let _ = write!(
            doc,
            "{} [{}](#{})",
            if i == 0 { "" } else { "," },
            h,
            slug(&h)
        );
    }
    doc.push_str(".\n");
    for table in &tables {
        let path = dotted(&table.path);
        let in_array = table.path.iter().position(|s| s.array);
        let _ = write!(doc, "\n## {}\n\n", heading(&table.path));
        let intro = [
            description(&table.field).map(one_line),
            description(&table.schema).map(|d| without_heading(&one_line(d))),
        ]
        .into_iter()
        .flatten()
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
        if !intro.is_empty() {
            let _ = writeln!(doc, "{intro}\n");
        }
        if let Some(first) = in_array {
            let _ = writeln!(
                doc,
                "From the environment: the whole list in `BRIDGE_{}` (see above).\n",
                dotted(&table.path[..=first])
                    .to_uppercase()
                    .replace('.', "__")
            );
        }
        let leaves = table.keys.iter().filter(|k| !k.table).collect::<Vec<_>>();
        let subtables = table.keys.iter().filter(|k| k.table).collect::<Vec<_>>();
        if !subtables.is_empty() && !table.path.is_empty() {
            let names = subtables
                .iter()
                .map(|k| format!("`{}`", k.name))
                .collect::<Vec<_>>()
                .join(", ");
            let _ = writeln!(doc, "Tables inside: {names} (below).\n");
        }
        if leaves.is_empty() {
            continue;
        }
        doc.push_str("| Key | Type | Default | Reload | Environment | Meaning |\n");
        doc.push_str("|---|---|---|---|---|---|\n");
        let required = table.schema["required"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for key in leaves {
            let full = if path.is_empty() {
                key.name.to_owned()
            } else {
                format!("{path}.{}", key.name)
            };
            let from_loading = match in_array {
                None => full.split('.').try_fold(&defaults, |v, k| v.get(k)),
                Some(_) => None,
            };
            let default = match from_loading
                .filter(|v| !v.is_null())
                .or(key.schema.get("default"))
            {
                // What loading starts from, unless the checks refuse it as it is.
                _ if unset.iter().any(|p| p.starts_with(&format!("{full}:"))) => {
                    "*required*".to_owned()
                }
                Some(v) => toml_value(v),
                None if required.iter().any(|r| r == key.name) => "*required*".to_owned(),
                None => "not set".to_owned(),
            };
            let env = match in_array {
                None => format!("`BRIDGE_{}`", full.to_uppercase().replace('.', "__")),
                Some(_) => "—".to_owned(),
            };
            let _ = writeln!(
                doc,
                "| `{}` | {} | {} | {} | {} | {}{} |",
                key.name,
                type_name(&key.schema, defs),
                default,
                if reloads_live(&full) {
                    "live"
                } else {
                    "restart"
                },
                env,
                description(&key.schema).map(one_line).unwrap_or_default(),
                variants(&key.schema, defs),
            );
        }
    }
    doc
}

/// GitHub's anchor of a heading: lower case, spaces to `-`, other punctuation dropped.
fn slug(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key serde accepts, as a dotted path (`issuers.claims.user_id`), with its schema.
    fn keys() -> Vec<(String, Value)> {
        let root = serde_json::to_value(schemars::schema_for!(Settings)).unwrap();
        let mut out = Vec::new();
        for table in tables(&root) {
            for key in table.keys.iter().filter(|k| !k.table) {
                let path = dotted(&table.path);
                let full = if path.is_empty() {
                    key.name.to_owned()
                } else {
                    format!("{path}.{}", key.name)
                };
                out.push((full, key.schema.clone()));
            }
        }
        out
    }

    #[test]
    fn the_configuration_reference_is_what_the_code_says() {
        let generated = generate();
        if std::env::var_os("UPDATE_CONFIG_REFERENCE").is_some() {
            std::fs::write(REFERENCE, &generated).unwrap();
            return;
        }
        let written = std::fs::read_to_string(REFERENCE).unwrap_or_default();
        if written != generated {
            let line = written
                .lines()
                .zip(generated.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(written.lines().count().min(generated.lines().count()));
            panic!(
                "docs/configuration.md is not what the code says (first difference at line {}:\n  \
                 file: {:?}\n  code: {:?}).\nRegenerate it with: {REGENERATE}",
                line + 1,
                written.lines().nth(line).unwrap_or("<end of file>"),
                generated.lines().nth(line).unwrap_or("<end of file>"),
            );
        }
    }

    #[test]
    fn the_configuration_reference_lists_every_key_check_config_accepts_with_its_meaning() {
        let keys = keys();
        assert!(
            keys.len() > 100,
            "{} keys found: the probe broke",
            keys.len()
        );
        let undocumented = keys
            .iter()
            .filter(|(_, schema)| description(schema).is_none())
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>();
        assert!(
            undocumented.is_empty(),
            "these keys have no doc comment, so the reference cannot say what they mean: {undocumented:?}"
        );
        // Every key serde knows has a schema of its own (the two derives agree).
        let no_schema = keys
            .iter()
            .filter(|(_, schema)| schema.is_null())
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>();
        assert!(no_schema.is_empty(), "keys without a schema: {no_schema:?}");
        // And the committed file lists each under its section (the text being written, when
        // the other test is writing it).
        let written = if std::env::var_os("UPDATE_CONFIG_REFERENCE").is_some() {
            generate()
        } else {
            std::fs::read_to_string(REFERENCE).unwrap_or_default()
        };
        let missing = keys
            .iter()
            .filter(|(full, _)| {
                let (section, name) = full.rsplit_once('.').unwrap_or(("", full));
                let body = written
                    .split("\n## ")
                    .find(|s| {
                        let title = s.lines().next().unwrap_or_default();
                        if section.is_empty() {
                            title == "Top level"
                        } else {
                            title.trim_matches(|c| c == '`' || c == '[' || c == ']') == section
                        }
                    })
                    .unwrap_or_default();
                !body.contains(&format!("\n| `{name}` |"))
            })
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>();
        assert!(
            missing.is_empty(),
            "docs/configuration.md lacks these keys; regenerate it with {REGENERATE}: {missing:?}"
        );
    }
}
