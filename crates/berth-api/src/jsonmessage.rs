//! Docker's streamed JSON messages (`pkg/jsonmessage`): progress of pull/push/load/import,
//! with errors carried inside the 200 stream.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// `progressDetail`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressDetail {
    /// Bytes done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<u64>,
    /// Bytes in all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

/// `errorDetail`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Code (build uses 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
    /// The message.
    #[serde(default)]
    pub message: String,
}

/// One line of a stream.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JsonMessage {
    /// Verbatim text (`Loaded image: …\n`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// Status (`Pulling fs layer`, `Downloading`, an image id for import).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The layer (short id) the status is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// A rendered bar (legacy clients print it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    /// Byte counts.
    #[serde(
        default,
        rename = "progressDetail",
        skip_serializing_if = "Option::is_none"
    )]
    pub progress_detail: Option<ProgressDetail>,
    /// Error text (legacy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Error detail.
    #[serde(
        default,
        rename = "errorDetail",
        skip_serializing_if = "Option::is_none"
    )]
    pub error_detail: Option<ErrorDetail>,
    /// Auxiliary data (push digest, build image id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aux: Option<serde_json::Value>,
}

impl JsonMessage {
    /// `{"stream": text}`.
    pub fn stream(text: impl Into<String>) -> JsonMessage {
        JsonMessage {
            stream: Some(text.into()),
            ..JsonMessage::default()
        }
    }

    /// `{"status": text, "id": id}`.
    pub fn status(text: impl Into<String>, id: Option<&str>) -> JsonMessage {
        JsonMessage {
            status: Some(text.into()),
            id: id.map(str::to_owned),
            ..JsonMessage::default()
        }
    }

    /// `{"errorDetail": {"message": m}, "error": m}`.
    pub fn error(message: impl Into<String>) -> JsonMessage {
        let m = message.into();
        JsonMessage {
            error: Some(m.clone()),
            error_detail: Some(ErrorDetail {
                code: None,
                message: m,
            }),
            ..JsonMessage::default()
        }
    }

    /// The message as one line with its newline.
    pub fn to_line(&self) -> Bytes {
        let mut v = serde_json::to_vec(self).unwrap_or_default();
        v.push(b'\n');
        Bytes::from(v)
    }

    /// The error text, when this message is an error.
    pub fn error_message(&self) -> Option<&str> {
        self.error_detail
            .as_ref()
            .map(|d| d.message.as_str())
            .or(self.error.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_have_docker_field_names() {
        let l = JsonMessage::stream("Loaded image: busybox:latest\n").to_line();
        assert_eq!(
            &l[..],
            b"{\"stream\":\"Loaded image: busybox:latest\\n\"}\n"
        );
        let e = JsonMessage::error("boom");
        let v: serde_json::Value = serde_json::from_slice(&e.to_line()).unwrap();
        assert_eq!(v["errorDetail"]["message"], "boom");
        assert_eq!(v["error"], "boom");
        let back: JsonMessage = serde_json::from_value(v).unwrap();
        assert_eq!(back.error_message(), Some("boom"));
    }
}
