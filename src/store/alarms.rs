//! CloudWatch alarms, for `guard`'s `alarm:NAME` checks: the same credentials, region and
//! retries as S3; the endpoint from `AWS_ENDPOINT_URL_CLOUDWATCH` or `AWS_ENDPOINT_URL`.

use aws_sdk_cloudwatch::error::DisplayErrorContext;
use aws_sdk_cloudwatch::types::StateValue;

/// An alarm's state as CloudWatch reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AlarmState {
    pub(crate) value: String,
    pub(crate) reason: String,
    pub(crate) updated: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum AlarmError {
    #[error("CloudWatch has no alarm named `{name}` in {region}")]
    NotFound { name: String, region: String },
    #[error("CloudWatch refused DescribeAlarms for `{name}`: {detail}")]
    Service { name: String, detail: String },
}

#[derive(Clone)]
pub(crate) struct Alarms {
    client: aws_sdk_cloudwatch::Client,
    region: String,
}

impl Alarms {
    pub(crate) fn new(aws: &aws_config::SdkConfig) -> Alarms {
        Alarms {
            client: aws_sdk_cloudwatch::Client::new(aws),
            region: aws
                .region()
                .map_or_else(|| "the configured region".into(), ToString::to_string),
        }
    }

    /// The state of one alarm, metric or composite.
    pub(crate) async fn state(&self, name: &str) -> Result<AlarmState, AlarmError> {
        use aws_sdk_cloudwatch::types::AlarmType;
        let out = self
            .client
            .describe_alarms()
            .alarm_names(name)
            .alarm_types(AlarmType::MetricAlarm)
            .alarm_types(AlarmType::CompositeAlarm)
            .send()
            .await
            .map_err(|e| AlarmError::Service {
                name: name.into(),
                detail: DisplayErrorContext(&e).to_string(),
            })?;
        let metric = out.metric_alarms().iter().find_map(|a| {
            (a.alarm_name() == Some(name)).then(|| {
                (
                    a.state_value().cloned(),
                    a.state_reason().map(str::to_string),
                    a.state_updated_timestamp().map(ToString::to_string),
                )
            })
        });
        let composite = || {
            out.composite_alarms().iter().find_map(|a| {
                (a.alarm_name() == Some(name)).then(|| {
                    (
                        a.state_value().cloned(),
                        a.state_reason().map(str::to_string),
                        a.state_updated_timestamp().map(ToString::to_string),
                    )
                })
            })
        };
        let (value, reason, updated) =
            metric
                .or_else(composite)
                .ok_or_else(|| AlarmError::NotFound {
                    name: name.into(),
                    region: self.region.clone(),
                })?;
        Ok(AlarmState {
            value: value
                .as_ref()
                .map_or("UNKNOWN", StateValue::as_str)
                .to_string(),
            reason: reason.unwrap_or_default(),
            updated,
        })
    }
}
