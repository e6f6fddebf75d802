//! Class `connection` (10): handshake, tuning, close, and RabbitMQ's blocked / update-secret.

use crate::protocol::codec::LongStr;
use crate::protocol::types::FieldTable;

method!(Start {
    version_major: u8,
    version_minor: u8,
    server_properties: FieldTable,
    mechanisms: LongStr,
    locales: LongStr
});
method!(StartOk { client_properties: FieldTable, mechanism: String, response: LongStr, locale: String });
method!(Secure { challenge: LongStr });
method!(SecureOk { response: LongStr });
method!(Tune { channel_max: u16, frame_max: u32, heartbeat: u16 });
method!(TuneOk { channel_max: u16, frame_max: u32, heartbeat: u16 });
method!(Open { virtual_host: String, capabilities: String, insist: bool });
method!(OpenOk { known_hosts: String });
method!(Close { reply_code: u16, reply_text: String, class_id: u16, method_id: u16 });
method!(CloseOk {});
method!(Blocked { reason: String });
method!(Unblocked {});
method!(UpdateSecret { new_secret: LongStr, reason: String });
method!(UpdateSecretOk {});
