//! The features a document uses: every field it sets, found by walking its JSON with the
//! message descriptors, each classified as enforced, rejected (the model refused it), or
//! ignored as harmless (the model's list, the bootstrap's, the harmless HTTP filters).

use prost_reflect::{Kind, MessageDescriptor};
use serde_json::Value;

use super::field_path::{FieldPath, Step};
use super::prune::Rejection;
use super::{Feature, Status};

/// What is known about a document besides its fields.
pub(super) struct Verdicts<'a> {
    pub rejections: &'a [Rejection],
    /// Exact paths (bootstrap sections) ignored, with why.
    pub ignored_paths: &'a [(String, String)],
}

/// The features of `document` (a message of type `message`), in document order.
pub(super) fn features(
    document: &Value,
    message: &MessageDescriptor,
    verdicts: &Verdicts<'_>,
) -> Vec<Feature> {
    let mut walk = Walk {
        verdicts,
        features: Vec::new(),
        within: Vec::new(),
    };
    for rejection in verdicts.rejections {
        walk.features.push(Feature {
            name: rejection.path.feature(),
            at: rejection.path.to_string(),
            status: Status::Rejected,
            why: Some(rejection.reason.clone()),
        });
    }
    walk.message(document, message, &FieldPath::default(), "");
    walk.features
}

struct Walk<'a> {
    verdicts: &'a Verdicts<'a>,
    features: Vec<Feature>,
    /// The messages the walk is in, outermost first.
    within: Vec<MessageDescriptor>,
}

impl Walk<'_> {
    /// The fields of `value`, a message of type `desc` at `path`; `name` is its feature name
    /// (list indices out, `Any` types in).
    fn message(&mut self, value: &Value, desc: &MessageDescriptor, path: &FieldPath, name: &str) {
        let Value::Object(map) = value else {
            return;
        };
        self.within.push(desc.clone());
        for (key, field_value) in map {
            let Some(field) = desc
                .get_field_by_name(key)
                .or_else(|| desc.get_field_by_json_name(key))
            else {
                continue;
            };
            let field_path = path.child(Step::Key(key.clone()));
            let field_name = join(name, field.name());
            if self.skipped(&field_path) {
                continue;
            }
            if let Some(why) = self.ignored(desc.full_name(), field.name(), &field_path) {
                self.push(&field_name, &field_path, Status::Ignored, Some(why));
                continue;
            }
            match (field.kind(), field_value) {
                (Kind::Message(inner), Value::Array(items)) if field.is_list() => {
                    for (index, item) in items.iter().enumerate() {
                        let item_path = field_path.child(Step::Index(index));
                        if !self.skipped(&item_path) {
                            self.value(item, &inner, &item_path, &format!("{field_name}[]"));
                        }
                    }
                }
                (Kind::Message(entry), Value::Object(entries)) if field.is_map() => {
                    // A map of messages (typed_extension_protocol_options,
                    // typed_per_filter_config): each value is walked, named by its key.
                    let Kind::Message(inner) = entry.map_entry_value_field().kind() else {
                        self.push(&field_name, &field_path, Status::Enforced, None);
                        continue;
                    };
                    for (map_key, item) in entries {
                        let item_path = field_path.child(Step::Key(map_key.clone()));
                        if !self.skipped(&item_path) {
                            let name = format!("{field_name}[{map_key}]");
                            self.value(item, &inner, &item_path, &name);
                        }
                    }
                }
                (Kind::Message(inner), item) if !field.is_map() => {
                    self.value(item, &inner, &field_path, &field_name);
                }
                _ => self.push(&field_name, &field_path, Status::Enforced, None),
            }
        }
        self.within.pop();
    }

    /// A message-typed value: an `Any` (named by its type, then walked), a well-known type
    /// or an empty message (a feature itself), or a message to walk.
    fn value(&mut self, value: &Value, desc: &MessageDescriptor, path: &FieldPath, name: &str) {
        if desc.full_name() == "google.protobuf.Any" {
            let type_name = value
                .get("@type")
                .and_then(Value::as_str)
                .map(|t| t.rsplit('/').next().unwrap_or(t));
            let Some(type_name) = type_name else {
                return;
            };
            let short = type_name.rsplit('.').next().unwrap_or(type_name);
            let any_name = format!("{name}<{short}>");
            if let Some((_, why)) = outrider_model::HARMLESS_HTTP_FILTERS
                .iter()
                .find(|(harmless, _)| *harmless == type_name)
            {
                self.push(&any_name, path, Status::Ignored, Some(why.to_string()));
                return;
            }
            self.push(&any_name, path, Status::Enforced, None);
            if let Ok(inner) = outrider_envoy_json::descriptor(type_name) {
                self.message(value, &inner, path, &any_name);
            }
            return;
        }
        let is_empty = value.as_object().is_some_and(|m| m.is_empty());
        if desc.full_name().starts_with("google.protobuf.") || is_empty {
            self.push(name, path, Status::Enforced, None);
        } else {
            self.message(value, desc, path, name);
        }
    }

    /// Covered by a rejection: reported once, as the rejection.
    fn skipped(&self, path: &FieldPath) -> bool {
        self.verdicts
            .rejections
            .iter()
            .any(|r| path.is_within(&r.covers))
    }

    fn ignored(&self, message: &str, field: &str, path: &FieldPath) -> Option<String> {
        let within = |name: &str| self.within.iter().any(|m| m.full_name() == name);
        if let Some(ignored) = outrider_model::ignored_field(message, field, within) {
            return Some(ignored.why.to_string());
        }
        let text = path.to_string();
        self.verdicts
            .ignored_paths
            .iter()
            .find(|(ignored, _)| *ignored == text)
            .map(|(_, why)| why.clone())
    }

    fn push(&mut self, name: &str, path: &FieldPath, status: Status, why: Option<String>) {
        self.features.push(Feature {
            name: name.to_string(),
            at: path.to_string(),
            status,
            why,
        });
    }
}

fn join(parent: &str, field: &str) -> String {
    if parent.is_empty() {
        field.to_string()
    } else {
        format!("{parent}.{field}")
    }
}
