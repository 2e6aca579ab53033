//! JSON helpers with one meaning each: pointers written into, merge patches, and whether one
//! value is contained in another (what m2s wants, in what the API server returns).

use serde_json::{json, Map, Value};

/// Whether every field of `want` is in `have` with the same value (objects may have more
/// fields: the API server and the stack's webhooks add defaults; arrays match element-wise).
pub(crate) fn is_subset(want: &Value, have: &Value) -> bool {
    match (want, have) {
        (Value::Object(w), Value::Object(h)) => w
            .iter()
            .all(|(k, v)| h.get(k).is_some_and(|hv| is_subset(v, hv))),
        (Value::Array(w), Value::Array(h)) => {
            w.len() == h.len() && w.iter().zip(h).all(|(a, b)| is_subset(a, b))
        }
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => want == have,
    }
}

/// RFC 7386: objects merge key by key, `null` removes, anything else replaces.
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let map = target.as_object_mut().expect("made an object");
    for (key, value) in patch {
        if value.is_null() {
            map.remove(key);
        } else {
            merge_patch(map.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// Sets `value` at a JSON pointer, creating objects and arrays on the way (an array index must
/// be an existing element or the next one).
pub(crate) fn set_pointer(root: &mut Value, pointer: &str, value: Value) -> Result<(), String> {
    let tokens: Vec<String> = pointer
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    let mut here = root;
    for (i, token) in tokens.iter().enumerate() {
        let last = i + 1 == tokens.len();
        let next_is_index = tokens
            .get(i + 1)
            .is_some_and(|t| t.parse::<usize>().is_ok());
        let empty = || if next_is_index { json!([]) } else { json!({}) };
        here = match here {
            Value::Object(map) => {
                if last {
                    map.insert(token.clone(), value);
                    return Ok(());
                }
                map.entry(token.clone()).or_insert_with(empty)
            }
            Value::Array(items) => {
                let index: usize = token
                    .parse()
                    .map_err(|_| format!("{pointer}: {token:?} is not an array index"))?;
                if index == items.len() {
                    items.push(if last { value.clone() } else { empty() });
                } else if index > items.len() {
                    return Err(format!("{pointer}: index {index} skips elements"));
                }
                if last {
                    items[index] = value;
                    return Ok(());
                }
                &mut items[index]
            }
            Value::Null => {
                *here = if token.parse::<usize>().is_ok() {
                    json!([])
                } else {
                    json!({})
                };
                return set_pointer_from(here, &tokens[i..], value, pointer);
            }
            _ => {
                return Err(format!(
                    "{pointer}: {token:?} is inside a value that is not an object"
                ))
            }
        };
    }
    *here = value;
    Ok(())
}

fn set_pointer_from(
    here: &mut Value,
    tokens: &[String],
    value: Value,
    pointer: &str,
) -> Result<(), String> {
    let rest: String = tokens
        .iter()
        .map(|t| format!("/{}", t.replace('~', "~0").replace('/', "~1")))
        .collect();
    set_pointer(here, &rest, value).map_err(|e| format!("{pointer}: {e}"))
}
