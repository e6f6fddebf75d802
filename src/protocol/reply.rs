//! AMQP reply codes with their scope (spec 1.9 "Constants"), and the error every handler returns.
//! A soft error closes its channel; a hard error closes the connection.

use std::fmt;

/// The reply codes of AMQP 0-9-1 as RabbitMQ uses them.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ReplyCode {
    ContentTooLarge = 311,
    NoRoute = 312,
    NoConsumers = 313,
    ConnectionForced = 320,
    InvalidPath = 402,
    AccessRefused = 403,
    NotFound = 404,
    ResourceLocked = 405,
    PreconditionFailed = 406,
    FrameError = 501,
    SyntaxError = 502,
    CommandInvalid = 503,
    ChannelError = 504,
    UnexpectedFrame = 505,
    ResourceError = 506,
    NotAllowed = 530,
    NotImplemented = 540,
    InternalError = 541,
}

impl ReplyCode {
    pub fn code(self) -> u16 {
        self as u16
    }

    /// Hard errors close the whole connection (spec: "connection exception").
    pub fn is_hard(self) -> bool {
        matches!(
            self,
            Self::ConnectionForced
                | Self::InvalidPath
                | Self::FrameError
                | Self::SyntaxError
                | Self::CommandInvalid
                | Self::ChannelError
                | Self::UnexpectedFrame
                | Self::ResourceError
                | Self::NotAllowed
                | Self::NotImplemented
                | Self::InternalError
        )
    }

    /// The name RabbitMQ puts in front of its reply texts.
    pub fn name(self) -> &'static str {
        match self {
            Self::ContentTooLarge => "CONTENT_TOO_LARGE",
            Self::NoRoute => "NO_ROUTE",
            Self::NoConsumers => "NO_CONSUMERS",
            Self::ConnectionForced => "CONNECTION_FORCED",
            Self::InvalidPath => "INVALID_PATH",
            Self::AccessRefused => "ACCESS_REFUSED",
            Self::NotFound => "NOT_FOUND",
            Self::ResourceLocked => "RESOURCE_LOCKED",
            Self::PreconditionFailed => "PRECONDITION_FAILED",
            Self::FrameError => "FRAME_ERROR",
            Self::SyntaxError => "SYNTAX_ERROR",
            Self::CommandInvalid => "COMMAND_INVALID",
            Self::ChannelError => "CHANNEL_ERROR",
            Self::UnexpectedFrame => "UNEXPECTED_FRAME",
            Self::ResourceError => "RESOURCE_ERROR",
            Self::NotAllowed => "NOT_ALLOWED",
            Self::NotImplemented => "NOT_IMPLEMENTED",
            Self::InternalError => "INTERNAL_ERROR",
        }
    }
}

/// An error to report to the peer: code, text, and the method that caused it (0, 0 when none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AmqpError {
    pub code: ReplyCode,
    pub text: String,
    pub class_id: u16,
    pub method_id: u16,
}

impl AmqpError {
    /// `text` is the part after RabbitMQ's `NAME - ` prefix, which this adds.
    pub fn new(code: ReplyCode, text: impl fmt::Display) -> Self {
        Self { code, text: format!("{} - {}", code.name(), text), class_id: 0, method_id: 0 }
    }

    /// Names the method the error answers (the close frame carries it).
    pub fn on(mut self, (class_id, method_id): (u16, u16)) -> Self {
        if self.class_id == 0 {
            self.class_id = class_id;
            self.method_id = method_id;
        }
        self
    }

    pub fn is_hard(&self) -> bool {
        self.code.is_hard()
    }

    pub fn syntax(text: impl fmt::Display) -> Self {
        Self::new(ReplyCode::SyntaxError, text)
    }
    pub fn frame(text: impl fmt::Display) -> Self {
        Self::new(ReplyCode::FrameError, text)
    }
    pub fn not_found(text: impl fmt::Display) -> Self {
        Self::new(ReplyCode::NotFound, text)
    }
    pub fn precondition(text: impl fmt::Display) -> Self {
        Self::new(ReplyCode::PreconditionFailed, text)
    }
    pub fn access_refused(text: impl fmt::Display) -> Self {
        Self::new(ReplyCode::AccessRefused, text)
    }
    pub fn resource_locked(text: impl fmt::Display) -> Self {
        Self::new(ReplyCode::ResourceLocked, text)
    }
    pub fn not_allowed(text: impl fmt::Display) -> Self {
        Self::new(ReplyCode::NotAllowed, text)
    }
    pub fn channel_error(text: impl fmt::Display) -> Self {
        Self::new(ReplyCode::ChannelError, text)
    }
    pub fn unexpected_frame(text: impl fmt::Display) -> Self {
        Self::new(ReplyCode::UnexpectedFrame, text)
    }
    pub fn command_invalid(text: impl fmt::Display) -> Self {
        Self::new(ReplyCode::CommandInvalid, text)
    }
    pub fn not_implemented(text: impl fmt::Display) -> Self {
        Self::new(ReplyCode::NotImplemented, text)
    }
    pub fn internal(text: impl fmt::Display) -> Self {
        Self::new(ReplyCode::InternalError, text)
    }
}

impl fmt::Display for AmqpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code.code(), self.text)
    }
}

impl std::error::Error for AmqpError {}

pub type Result<T, E = AmqpError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_carries_rabbitmq_prefix() {
        let e = AmqpError::not_found("no queue 'q1' in vhost '/'");
        assert_eq!(e.text, "NOT_FOUND - no queue 'q1' in vhost '/'");
        assert!(!e.is_hard());
        assert!(AmqpError::frame("x").is_hard());
    }
}
