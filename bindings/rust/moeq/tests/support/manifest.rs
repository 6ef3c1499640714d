//! Reads the flat JSON of the golden vectors (index.json, each case's manifest.json):
//! a field's value as text, a string, a number, a flag, or a flat array. Enough for
//! these files, which hold no escapes and no nested arrays.

/// The raw text of `key`'s value: up to the comma or brace that ends it.
pub fn raw_value<'a>(json: &'a str, key: &str) -> &'a str {
    let quoted_key = format!("\"{key}\"");
    let start = json.find(&quoted_key).unwrap_or_else(|| panic!("no field {key} in manifest"));
    let after_colon = json[start + quoted_key.len()..].trim_start().strip_prefix(':').expect("a colon after the key");
    let value = after_colon.trim_start();
    let end = if value.starts_with('[') {
        value.find(']').expect("a closing bracket") + 1
    } else {
        value.find([',', '}', '\n']).unwrap_or(value.len())
    };
    value[..end].trim()
}

pub fn string(json: &str, key: &str) -> String {
    raw_value(json, key).trim_matches('"').to_string()
}

pub fn integer(json: &str, key: &str) -> i64 {
    raw_value(json, key).parse().unwrap_or_else(|_| panic!("field {key} is not an integer"))
}

pub fn flag(json: &str, key: &str) -> bool {
    raw_value(json, key) == "true"
}

/// The entries of a flat array, as text without quotes.
pub fn array(json: &str, key: &str) -> Vec<String> {
    let text = raw_value(json, key);
    text[1..text.len() - 1]
        .split(',')
        .map(|entry| entry.trim().trim_matches('"').to_string())
        .filter(|entry| !entry.is_empty())
        .collect()
}
