//! `accesslog.v3.AccessLogFilter`: which requests an access log writes. Built as Envoy's
//! `AccessLog::FilterFactory` builds them; a filter we cannot evaluate is refused by path.
//!
//! Runtime keys (`runtime_key` of a comparison or a runtime filter) read Envoy's runtime, and a
//! bootstrap that sets an Envoy runtime key is refused (only `outrider.*` keys are read), so
//! the key is never set and its default applies, which is what Envoy does with a key no layer
//! sets.

use envoy_types::pb::envoy::config::accesslog::v3::{
    self as pb, access_log_filter::FilterSpecifier, comparison_filter::Op,
};
use envoy_types::pb::envoy::r#type::v3::fractional_percent::DenominatorType;

use crate::error::{Result, ValidationError, Within, convert_each};
use crate::matcher::HeaderMatcher;
use crate::proto_value::enum_value;

/// A filter of access-log entries.
#[derive(Debug, Clone, PartialEq)]
pub enum LogFilter {
    /// The response code (0 when none was sent) compared with a value.
    StatusCode(Comparison),
    /// The request's duration in milliseconds compared with a value.
    Duration(Comparison),
    /// Not a health check. No HTTP filter here marks requests as health checks (Envoy's
    /// `health_check` filter does), so every request passes, as in Envoy without one.
    NotHealthCheck,
    /// Samples `numerator / denominator` of requests: by `x-request-id` (so every log of a
    /// request agrees) unless `independent` or the request has no UUID id.
    Runtime {
        numerator: u64,
        denominator: u64,
        independent: bool,
    },
    And(Vec<LogFilter>),
    Or(Vec<LogFilter>),
    /// A request header matcher.
    Header(HeaderMatcher),
    /// Any of these response flags (Envoy's short codes); empty: any flag at all.
    ResponseFlag(Vec<String>),
    /// The gRPC status (trailers, then headers; `Unknown` when none) is one of `statuses`,
    /// or none of them with `exclude`.
    GrpcStatus {
        statuses: Vec<u32>,
        exclude: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Comparison {
    pub op: CompareOp,
    pub value: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Ge,
    Eq,
    Le,
    Ne,
}

impl Comparison {
    pub fn holds_for(&self, value: u64) -> bool {
        match self.op {
            CompareOp::Ge => value >= self.value,
            CompareOp::Eq => value == self.value,
            CompareOp::Le => value <= self.value,
            CompareOp::Ne => value != self.value,
        }
    }
}

/// Envoy's response flags, as `ResponseFlagFilter.flags` accepts them.
const RESPONSE_FLAGS: &[&str] = &[
    "LH", "UH", "UT", "LR", "UR", "UF", "UC", "UO", "NR", "DI", "FI", "RL", "UAEX", "RLSE", "DC",
    "URX", "SI", "IH", "DPE", "UMSDR", "RFCF", "NFCF", "DT", "UPE", "NC", "OM", "DF", "DO", "DR",
    "UDO",
];

impl LogFilter {
    pub(crate) fn from_proto(proto: &pb::AccessLogFilter) -> Result<Self> {
        let pb::AccessLogFilter { filter_specifier } = proto;
        let Some(specifier) = filter_specifier else {
            return Err(ValidationError::new(
                "filter_specifier",
                "one filter is required",
            ));
        };
        Ok(match specifier {
            FilterSpecifier::StatusCodeFilter(f) => LogFilter::StatusCode(
                comparison(f.comparison.as_ref()).within("status_code_filter")?,
            ),
            FilterSpecifier::DurationFilter(f) => {
                LogFilter::Duration(comparison(f.comparison.as_ref()).within("duration_filter")?)
            }
            FilterSpecifier::NotHealthCheckFilter(pb::NotHealthCheckFilter {}) => {
                LogFilter::NotHealthCheck
            }
            FilterSpecifier::RuntimeFilter(f) => runtime(f).within("runtime_filter")?,
            FilterSpecifier::AndFilter(f) => LogFilter::And(operands(&f.filters, "and_filter")?),
            FilterSpecifier::OrFilter(f) => LogFilter::Or(operands(&f.filters, "or_filter")?),
            FilterSpecifier::HeaderFilter(pb::HeaderFilter { header }) => {
                let header = header
                    .as_ref()
                    .ok_or_else(|| ValidationError::required("header_filter.header"))?;
                LogFilter::Header(HeaderMatcher::from_proto(header).within("header_filter.header")?)
            }
            FilterSpecifier::ResponseFlagFilter(pb::ResponseFlagFilter { flags }) => {
                for (index, flag) in flags.iter().enumerate() {
                    if !RESPONSE_FLAGS.contains(&flag.as_str()) {
                        return Err(ValidationError::new(
                            format!("response_flag_filter.flags[{index}]"),
                            format!("{flag:?} is not one of Envoy's response flags"),
                        ));
                    }
                }
                LogFilter::ResponseFlag(flags.clone())
            }
            FilterSpecifier::GrpcStatusFilter(pb::GrpcStatusFilter { statuses, exclude }) => {
                let mut codes = Vec::with_capacity(statuses.len());
                for (index, status) in statuses.iter().enumerate() {
                    let field = format!("grpc_status_filter.statuses[{index}]");
                    let status: pb::grpc_status_filter::Status = enum_value(*status, &field)?;
                    codes.push(status as u32);
                }
                LogFilter::GrpcStatus {
                    statuses: codes,
                    exclude: *exclude,
                }
            }
            FilterSpecifier::TraceableFilter(_) => {
                return Err(ValidationError::not_enforced(
                    "traceable_filter",
                    "tracing decisions are not made (no tracer is built)",
                ));
            }
            FilterSpecifier::MetadataFilter(_) => {
                return Err(ValidationError::not_enforced(
                    "metadata_filter",
                    "dynamic metadata is not kept per request",
                ));
            }
            FilterSpecifier::LogTypeFilter(_) => {
                return Err(ValidationError::not_enforced(
                    "log_type_filter",
                    "only end-of-stream entries are written; log types are not told apart",
                ));
            }
            FilterSpecifier::ExtensionFilter(_) => {
                return Err(ValidationError::not_enforced(
                    "extension_filter",
                    "no access-log filter extension is built",
                ));
            }
        })
    }
}

fn operands(filters: &[pb::AccessLogFilter], field: &str) -> Result<Vec<LogFilter>> {
    // PGV: `min_items: 2`.
    if filters.len() < 2 {
        return Err(ValidationError::new(
            format!("{field}.filters"),
            "needs at least 2 filters",
        ));
    }
    convert_each(filters, &format!("{field}.filters"), LogFilter::from_proto)
}

fn comparison(proto: Option<&pb::ComparisonFilter>) -> Result<Comparison> {
    let pb::ComparisonFilter { op, value } =
        proto.ok_or_else(|| ValidationError::required("comparison"))?;
    let op = match enum_value::<Op>(*op, "comparison.op")? {
        Op::Ge => CompareOp::Ge,
        Op::Eq => CompareOp::Eq,
        Op::Le => CompareOp::Le,
        Op::Ne => CompareOp::Ne,
    };
    let value = value
        .as_ref()
        .ok_or_else(|| ValidationError::required("comparison.value"))?;
    // The runtime key is never set (see the module's note): the default holds.
    let envoy_types::pb::envoy::config::core::v3::RuntimeUInt32 {
        default_value,
        runtime_key: _,
    } = value;
    Ok(Comparison {
        op,
        value: u64::from(*default_value),
    })
}

fn runtime(proto: &pb::RuntimeFilter) -> Result<LogFilter> {
    let pb::RuntimeFilter {
        runtime_key,
        percent_sampled,
        use_independent_randomness,
    } = proto;
    if runtime_key.is_empty() {
        return Err(ValidationError::new("runtime_key", "must not be empty"));
    }
    // Envoy's default without `percent_sampled`: 0 %.
    let (numerator, denominator) = match percent_sampled {
        None => (0, 100),
        Some(percent) => {
            let denominator: DenominatorType =
                enum_value(percent.denominator, "percent_sampled.denominator")?;
            let denominator = match denominator {
                DenominatorType::Hundred => 100,
                DenominatorType::TenThousand => 10_000,
                DenominatorType::Million => 1_000_000,
            };
            (u64::from(percent.numerator), denominator)
        }
    };
    Ok(LogFilter::Runtime {
        numerator,
        denominator,
        independent: *use_independent_randomness,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(yaml: &str) -> Result<LogFilter> {
        let proto: pb::AccessLogFilter =
            outrider_envoy_json::from_yaml_str(yaml).expect("a filter");
        LogFilter::from_proto(&proto)
    }

    #[test]
    fn comparisons_and_operators() {
        let parsed = filter(
            "or_filter: { filters: [ { status_code_filter: { comparison: { op: GE, value: { default_value: 500, runtime_key: k } } } }, { duration_filter: { comparison: { op: LE, value: { default_value: 10 } } } } ] }",
        )
        .expect("valid");
        let LogFilter::Or(filters) = parsed else {
            panic!("an or filter: {parsed:?}");
        };
        assert_eq!(
            filters[0],
            LogFilter::StatusCode(Comparison {
                op: CompareOp::Ge,
                value: 500
            })
        );
        assert!(
            Comparison {
                op: CompareOp::Le,
                value: 10
            }
            .holds_for(10)
        );
        assert!(
            !Comparison {
                op: CompareOp::Eq,
                value: 10
            }
            .holds_for(11)
        );
    }

    #[test]
    fn bad_filters_name_their_field() {
        let error = filter("response_flag_filter: { flags: [ UH, XX ] }").expect_err("bad flag");
        assert_eq!(error.path, "response_flag_filter.flags[1]");
        let error = filter("and_filter: { filters: [ { not_health_check_filter: {} } ] }")
            .expect_err("one operand");
        assert_eq!(error.path, "and_filter.filters");
        let error = filter("traceable_filter: {}").expect_err("not built");
        assert_eq!(error.path, "traceable_filter");
    }

    #[test]
    fn runtime_sampling_defaults() {
        let parsed = filter("runtime_filter: { runtime_key: k, percent_sampled: { numerator: 5, denominator: TEN_THOUSAND } }")
            .expect("valid");
        assert_eq!(
            parsed,
            LogFilter::Runtime {
                numerator: 5,
                denominator: 10_000,
                independent: false
            }
        );
    }
}
