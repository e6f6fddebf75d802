//! Class `channel` (20).

use crate::protocol::codec::LongStr;

method!(Open { out_of_band: String });
method!(OpenOk { channel_id: LongStr });
method!(Flow { active: bool });
method!(FlowOk { active: bool });
method!(Close { reply_code: u16, reply_text: String, class_id: u16, method_id: u16 });
method!(CloseOk {});
