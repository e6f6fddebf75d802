//! AMQP reply codes with their scope (spec 1.9 "Constants"), and the errors handlers return.
//! A soft error is a `ChannelError` and closes its channel; a hard error is a `ConnectionError` and
//! closes the connection. Each carries only its own codes, so a channel error with 501 does not
//! compile; `AmqpError` is either, for handlers that can fail both ways.

use std::fmt;

use super::methods::{channel, connection};

/// A reply code of one scope: its number and the name RabbitMQ puts in front of its reply texts.
pub trait ReplyCode: Copy + fmt::Debug {
    fn code(self) -> u16;
    fn name(self) -> &'static str;
}

macro_rules! reply_codes {
    ($(#[$doc:meta])* $enum:ident { $($variant:ident = $code:literal $name:literal,)* }) => {
        $(#[$doc])*
        #[derive(Copy, Clone, Debug, PartialEq, Eq)]
        pub enum $enum {
            $($variant = $code,)*
        }

        impl ReplyCode for $enum {
            fn code(self) -> u16 {
                self as u16
            }
            fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)*
                }
            }
        }
    };
}

reply_codes! {
    /// The soft-error codes channel.close carries.
    SoftError {
        AccessRefused = 403 "ACCESS_REFUSED",
        NotFound = 404 "NOT_FOUND",
        ResourceLocked = 405 "RESOURCE_LOCKED",
        PreconditionFailed = 406 "PRECONDITION_FAILED",
    }
}

reply_codes! {
    /// The hard-error codes connection.close carries. 403 is here too: the spec lists
    /// access-refused as a soft error, but a refused login has no channel to close, and RabbitMQ
    /// answers it with connection.close 403 (clients such as pika map that code to their
    /// "access refused" error), so Warren does the same.
    HardError {
        ConnectionForced = 320 "CONNECTION_FORCED",
        InvalidPath = 402 "INVALID_PATH",
        AccessRefused = 403 "ACCESS_REFUSED",
        FrameError = 501 "FRAME_ERROR",
        SyntaxError = 502 "SYNTAX_ERROR",
        CommandInvalid = 503 "COMMAND_INVALID",
        ChannelError = 504 "CHANNEL_ERROR",
        UnexpectedFrame = 505 "UNEXPECTED_FRAME",
        ResourceError = 506 "RESOURCE_ERROR",
        NotAllowed = 530 "NOT_ALLOWED",
        NotImplemented = 540 "NOT_IMPLEMENTED",
        InternalError = 541 "INTERNAL_ERROR",
    }
}

/// basic.return's reply code for a mandatory message no queue took (spec 1.9 "no-route"): a soft
/// code, but it answers a publish, it closes nothing.
pub const NO_ROUTE: u16 = 312;

/// An error to report to the peer: code, text, and the method that caused it (0, 0 when none).
/// Its scope is its code type: `ChannelError` or `ConnectionError`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScopedError<C> {
    code: C,
    text: String,
    class_id: u16,
    method_id: u16,
}

/// Closes a channel (channel.close).
pub type ChannelError = ScopedError<SoftError>;
/// Closes the connection (connection.close).
pub type ConnectionError = ScopedError<HardError>;

impl<C: ReplyCode> ScopedError<C> {
    /// `text` is the part after RabbitMQ's `NAME - ` prefix, which this adds.
    pub fn new(code: C, text: impl fmt::Display) -> Self {
        Self { code, text: format!("{} - {}", code.name(), text), class_id: 0, method_id: 0 }
    }

    /// Names the method the error answers (the close frame carries it), unless one is named.
    pub fn on(mut self, (class_id, method_id): (u16, u16)) -> Self {
        if self.class_id == 0 {
            self.class_id = class_id;
            self.method_id = method_id;
        }
        self
    }

    pub fn code(&self) -> C {
        self.code
    }

    pub fn reply_code(&self) -> u16 {
        self.code.code()
    }

    /// The text with its `NAME - ` prefix, as the close frame carries it.
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn into_text(self) -> String {
        self.text
    }

    /// (class_id, method_id) of the method the error answers; (0, 0) when none.
    pub fn method(&self) -> (u16, u16) {
        (self.class_id, self.method_id)
    }

    fn connection_close(self) -> connection::Close {
        connection::Close {
            reply_code: self.reply_code(),
            reply_text: self.text,
            class_id: self.class_id,
            method_id: self.method_id,
        }
    }
}

impl ChannelError {
    pub fn access_refused(text: impl fmt::Display) -> Self {
        Self::new(SoftError::AccessRefused, text)
    }
    pub fn not_found(text: impl fmt::Display) -> Self {
        Self::new(SoftError::NotFound, text)
    }
    pub fn resource_locked(text: impl fmt::Display) -> Self {
        Self::new(SoftError::ResourceLocked, text)
    }
    pub fn precondition(text: impl fmt::Display) -> Self {
        Self::new(SoftError::PreconditionFailed, text)
    }

    pub fn into_close(self) -> channel::Close {
        channel::Close {
            reply_code: self.reply_code(),
            reply_text: self.text,
            class_id: self.class_id,
            method_id: self.method_id,
        }
    }

    /// A channel error raised on channel 0 closes the connection with its own code and text:
    /// channel 0 is the connection's, there is no smaller thing to close (RabbitMQ's
    /// `rabbit_binary_generator:map_exception` does the same).
    pub fn into_connection_close(self) -> connection::Close {
        self.connection_close()
    }
}

impl ConnectionError {
    pub fn connection_forced(text: impl fmt::Display) -> Self {
        Self::new(HardError::ConnectionForced, text)
    }
    /// A refused login (see `HardError`).
    pub fn access_refused(text: impl fmt::Display) -> Self {
        Self::new(HardError::AccessRefused, text)
    }
    pub fn frame(text: impl fmt::Display) -> Self {
        Self::new(HardError::FrameError, text)
    }
    pub fn syntax(text: impl fmt::Display) -> Self {
        Self::new(HardError::SyntaxError, text)
    }
    pub fn command_invalid(text: impl fmt::Display) -> Self {
        Self::new(HardError::CommandInvalid, text)
    }
    pub fn channel_error(text: impl fmt::Display) -> Self {
        Self::new(HardError::ChannelError, text)
    }
    pub fn unexpected_frame(text: impl fmt::Display) -> Self {
        Self::new(HardError::UnexpectedFrame, text)
    }
    pub fn not_allowed(text: impl fmt::Display) -> Self {
        Self::new(HardError::NotAllowed, text)
    }
    pub fn not_implemented(text: impl fmt::Display) -> Self {
        Self::new(HardError::NotImplemented, text)
    }
    pub fn internal(text: impl fmt::Display) -> Self {
        Self::new(HardError::InternalError, text)
    }

    pub fn into_close(self) -> connection::Close {
        self.connection_close()
    }
}

impl<C: ReplyCode> fmt::Display for ScopedError<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.reply_code(), self.text)
    }
}

impl<C: ReplyCode> std::error::Error for ScopedError<C> {}

/// The error of a handler that can fail with either scope; the connection turns it into a close.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AmqpError {
    Channel(ChannelError),
    Connection(ConnectionError),
}

impl From<ChannelError> for AmqpError {
    fn from(e: ChannelError) -> Self {
        Self::Channel(e)
    }
}

impl From<ConnectionError> for AmqpError {
    fn from(e: ConnectionError) -> Self {
        Self::Connection(e)
    }
}

/// One-line constructors for handlers returning `AmqpError`; each code keeps its own scope.
impl AmqpError {
    pub fn access_refused(text: impl fmt::Display) -> Self {
        ChannelError::access_refused(text).into()
    }
    pub fn not_found(text: impl fmt::Display) -> Self {
        ChannelError::not_found(text).into()
    }
    pub fn resource_locked(text: impl fmt::Display) -> Self {
        ChannelError::resource_locked(text).into()
    }
    pub fn precondition(text: impl fmt::Display) -> Self {
        ChannelError::precondition(text).into()
    }
    pub fn frame(text: impl fmt::Display) -> Self {
        ConnectionError::frame(text).into()
    }
    pub fn syntax(text: impl fmt::Display) -> Self {
        ConnectionError::syntax(text).into()
    }
    pub fn command_invalid(text: impl fmt::Display) -> Self {
        ConnectionError::command_invalid(text).into()
    }
    pub fn channel_error(text: impl fmt::Display) -> Self {
        ConnectionError::channel_error(text).into()
    }
    pub fn unexpected_frame(text: impl fmt::Display) -> Self {
        ConnectionError::unexpected_frame(text).into()
    }
    pub fn not_allowed(text: impl fmt::Display) -> Self {
        ConnectionError::not_allowed(text).into()
    }
    pub fn not_implemented(text: impl fmt::Display) -> Self {
        ConnectionError::not_implemented(text).into()
    }
    pub fn internal(text: impl fmt::Display) -> Self {
        ConnectionError::internal(text).into()
    }

    /// Names the method the error answers (the close frame carries it), unless one is named.
    pub fn on(self, id: (u16, u16)) -> Self {
        match self {
            Self::Channel(e) => Self::Channel(e.on(id)),
            Self::Connection(e) => Self::Connection(e.on(id)),
        }
    }

    pub fn reply_code(&self) -> u16 {
        match self {
            Self::Channel(e) => e.reply_code(),
            Self::Connection(e) => e.reply_code(),
        }
    }

    pub fn text(&self) -> &str {
        match self {
            Self::Channel(e) => e.text(),
            Self::Connection(e) => e.text(),
        }
    }

    pub fn into_text(self) -> String {
        match self {
            Self::Channel(e) => e.into_text(),
            Self::Connection(e) => e.into_text(),
        }
    }

    pub fn method(&self) -> (u16, u16) {
        match self {
            Self::Channel(e) => e.method(),
            Self::Connection(e) => e.method(),
        }
    }
}

impl fmt::Display for AmqpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Channel(e) => e.fmt(f),
            Self::Connection(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for AmqpError {}

pub type Result<T, E = AmqpError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_carries_rabbitmq_prefix() {
        let e = ChannelError::not_found("no queue 'q1' in vhost '/'");
        assert_eq!(e.text(), "NOT_FOUND - no queue 'q1' in vhost '/'");
        assert_eq!(e.to_string(), "404 NOT_FOUND - no queue 'q1' in vhost '/'");
        let e = ConnectionError::frame("frame does not end with 0xCE");
        assert_eq!(e.text(), "FRAME_ERROR - frame does not end with 0xCE");
        assert_eq!(AmqpError::from(e).text(), "FRAME_ERROR - frame does not end with 0xCE");
    }

    #[test]
    fn each_code_keeps_its_scope() {
        let soft = [
            (AmqpError::access_refused("x"), 403),
            (AmqpError::not_found("x"), 404),
            (AmqpError::resource_locked("x"), 405),
            (AmqpError::precondition("x"), 406),
        ];
        for (e, code) in soft {
            assert!(matches!(e, AmqpError::Channel(_)), "{e}");
            assert_eq!(e.reply_code(), code);
        }
        let hard = [
            (AmqpError::command_invalid("x"), 503),
            (AmqpError::frame("x"), 501),
            (AmqpError::syntax("x"), 502),
            (AmqpError::channel_error("x"), 504),
            (AmqpError::unexpected_frame("x"), 505),
            (AmqpError::not_allowed("x"), 530),
            (AmqpError::not_implemented("x"), 540),
            (AmqpError::internal("x"), 541),
        ];
        for (e, code) in hard {
            assert!(matches!(e, AmqpError::Connection(_)), "{e}");
            assert_eq!(e.reply_code(), code);
        }
        assert_eq!(ConnectionError::connection_forced("x").code().code(), 320);
    }

    #[test]
    fn refused_login_is_a_connection_error_403() {
        let e = ConnectionError::access_refused("Login was refused");
        assert_eq!(e.code(), HardError::AccessRefused);
        let close = e.into_close();
        assert_eq!((close.reply_code, close.reply_text.as_str()), (403, "ACCESS_REFUSED - Login was refused"));
    }

    #[test]
    fn close_frames_carry_code_text_and_the_first_method_named() {
        let close = ChannelError::precondition("unknown delivery tag 7").on((60, 80)).on((20, 40)).into_close();
        assert_eq!(
            (close.reply_code, close.reply_text.as_str(), close.class_id, close.method_id),
            (406, "PRECONDITION_FAILED - unknown delivery tag 7", 60, 80)
        );
        let close = ConnectionError::not_allowed("vhost x not found").on((10, 40)).into_close();
        assert_eq!((close.reply_code, close.class_id, close.method_id), (530, 10, 40));
        let e = AmqpError::not_implemented("active=false").on((20, 20));
        assert_eq!(e.method(), (20, 20));
        assert_eq!(ChannelError::not_found("x").method(), (0, 0));
    }

    #[test]
    fn channel_error_on_channel_zero_closes_the_connection_with_its_code() {
        let close = ChannelError::access_refused("x").on((50, 10)).into_connection_close();
        assert_eq!(
            (close.reply_code, close.reply_text.as_str(), close.class_id, close.method_id),
            (403, "ACCESS_REFUSED - x", 50, 10)
        );
    }
}
