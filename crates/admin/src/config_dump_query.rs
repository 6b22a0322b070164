//! `/config_dump`'s query: `?resource=`, `?mask=`, `?name_regex=`, `?include_eds`, applied as
//! Envoy's `ConfigDumpHandler` does, with its status codes and messages.

use envoy_types::pb::envoy::admin::v3::ConfigDump;
use envoy_types::pb::google::protobuf::Any;
use http::StatusCode;
use prost::Message;
use prost_reflect::{DynamicMessage, ReflectMessage, Value};

use crate::admin_pages::QueryParams;
use crate::config_dump::{DumpInputs, NameFilter, sections};
use crate::field_mask::FieldMask;
use crate::redact::to_redacted_value;

/// A request that cannot be answered with a dump: the status and the plain-text reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub(crate) struct DumpError {
    pub status: StatusCode,
    pub message: String,
}

impl DumpError {
    fn bad_request(message: String) -> Self {
        DumpError {
            status: StatusCode::BAD_REQUEST,
            message,
        }
    }
}

/// The parsed query of one `/config_dump` request.
#[derive(Debug, Clone)]
pub(crate) struct ConfigDumpQuery {
    resource: Option<String>,
    mask: Option<(String, FieldMask)>,
    names: NameFilter,
    include_eds: bool,
}

impl ConfigDumpQuery {
    /// Envoy takes the first value of each parameter; `include_eds` only has to be present.
    pub(crate) fn parse(params: &QueryParams) -> Result<Self, DumpError> {
        let pattern = params.first("name_regex").unwrap_or_default();
        let names = NameFilter::new(pattern).map_err(|e| {
            DumpError::bad_request(format!(
                "Error while parsing name_regex from {pattern}: {e}"
            ))
        })?;
        Ok(ConfigDumpQuery {
            resource: params.first("resource").map(str::to_string),
            mask: params
                .first("mask")
                .map(|text| (text.to_string(), FieldMask::parse(text))),
            names,
            include_eds: params.first("include_eds").is_some(),
        })
    }

    /// Builds the dump this query asks for and prints it as Envoy's JSON.
    pub(crate) fn run(&self, inputs: &DumpInputs<'_>) -> Result<serde_json::Value, DumpError> {
        let sections = sections(inputs, &self.names, self.include_eds);
        let configs = match &self.resource {
            Some(resource) => self.resource_entries(sections, resource)?,
            None => self.masked_sections(sections)?,
        };
        to_redacted_value(&ConfigDump { configs }).map_err(|e| DumpError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("config dump could not be printed: {e}"),
        })
    }

    /// No `resource`: the mask applies to each whole section; a section it does not fit is
    /// left out (each section type has different fields), and a mask that fits none is an error.
    fn masked_sections(&self, sections: Vec<Any>) -> Result<Vec<Any>, DumpError> {
        let Some((text, mask)) = &self.mask else {
            return Ok(sections);
        };
        let mut out = Vec::with_capacity(sections.len());
        for section in sections {
            let mut msg = unpack(&section)?;
            if mask.trim(&mut msg).is_ok() {
                out.push(Any {
                    type_url: section.type_url,
                    value: msg.encode_to_vec(),
                });
            }
        }
        if out.is_empty() {
            return Err(DumpError::bad_request(format!(
                "FieldMask {text} could not be successfully applied to any configs."
            )));
        }
        Ok(out)
    }

    /// `resource`: the entries of the first section that has a repeated field of that name,
    /// each packed on its own, with the mask applied to each entry.
    fn resource_entries(&self, sections: Vec<Any>, resource: &str) -> Result<Vec<Any>, DumpError> {
        for section in sections {
            let msg = unpack(&section)?;
            let Some(field) = msg.descriptor().get_field_by_name(resource) else {
                continue;
            };
            if !field.is_list() {
                return Err(DumpError::bad_request(format!(
                    "{name} is not a repeated field. Use ?mask={name} to get only this field",
                    name = field.name()
                )));
            }
            let Value::List(entries) = msg.get_field(&field).into_owned() else {
                return Ok(Vec::new());
            };
            let mut out = Vec::with_capacity(entries.len());
            for entry in entries {
                let Value::Message(mut entry) = entry else {
                    continue;
                };
                if let Some((_, mask)) = &self.mask {
                    mask.trim_resource(&mut entry).map_err(|_| {
                        DumpError::bad_request(format!(
                            "FieldMask {} could not be successfully used.",
                            debug_string(mask)
                        ))
                    })?;
                }
                out.push(Any {
                    type_url: format!("type.googleapis.com/{}", entry.descriptor().full_name()),
                    value: entry.encode_to_vec(),
                });
            }
            return Ok(out);
        }
        Err(DumpError {
            status: StatusCode::NOT_FOUND,
            message: format!("{resource} not found in config dump"),
        })
    }
}

fn unpack(section: &Any) -> Result<DynamicMessage, DumpError> {
    let name = section.type_url.rsplit('/').next().unwrap_or_default();
    outrider_envoy_json::descriptor(name)
        .map_err(|e| e.to_string())
        .and_then(|desc| {
            DynamicMessage::decode(desc, section.value.as_slice()).map_err(|e| e.to_string())
        })
        .map_err(|e| DumpError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("config dump section {name}: {e}"),
        })
}

/// How protobuf's `FieldMask::DebugString` renders the mask in Envoy's error message.
fn debug_string(mask: &FieldMask) -> String {
    mask.paths()
        .iter()
        .map(|path| format!("paths: \"{path}\""))
        .collect::<Vec<_>>()
        .join(" ")
}
