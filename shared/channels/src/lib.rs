//! Every channel is one module built from the channel kit ([`kit`]): answer
//! set-up handshakes, verify the request over its raw bytes, parse it into
//! normalised messages, and send a reply. Adding a channel touches its module,
//! one registry line, its contract-test fixture and its README section.

pub mod dingtalk;
pub mod discord;
pub mod email;
pub mod feishu;
pub mod instagram;
pub mod kit;
pub mod line;
pub mod mailgun;
pub mod messenger;
pub mod notify;
pub mod postmark;
pub mod registry;
pub mod sendgrid;
pub mod ses;
pub mod slack;
pub mod telegram;
pub mod tiers;
pub mod twilio;
pub mod viber;
pub mod webchat;
pub mod wechat;
pub mod wecom;
pub mod whatsapp;
pub mod x;

pub use kit::{
    Channel, ChannelDeps, ChannelSpec, ConfigError, HttpReply, Inbound, Outbound, ParseError,
    PublicUrl, RequestExt, SharedChannel, Verified, VerifyError, WebhookRequest, kind_for_mime,
};
pub use registry::{ChannelSettings, Registry};
