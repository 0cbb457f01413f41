//! Filter requests as bytes: decode into netlink-packet-route's message
//! types and encode back. Decoding is total: attributes the library does
//! not model (gact and police actions, for instance) are kept as raw
//! attributes and emitted unchanged, so decode → encode gives the same
//! bytes.
//!
//! What legitimately differs between two requests for the same filter is
//! normalised by [`normalise`]: the sequence number and port id (chosen per
//! socket and per request) and the interface index (chosen by the kernel
//! per interface).

use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_route::tc::TcMessage;
use netlink_packet_route::RouteNetlinkMessage;

/// Decode one netlink request.
pub fn decode(bytes: &[u8]) -> Result<NetlinkMessage<RouteNetlinkMessage>, String> {
    NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes).map_err(|e| format!("not a route netlink message: {e}"))
}

/// Encode a message as the kernel receives it.
pub fn encode(msg: &NetlinkMessage<RouteNetlinkMessage>) -> Vec<u8> {
    let mut msg = msg.clone();
    msg.finalize();
    let mut out = vec![0u8; msg.buffer_len()];
    msg.serialize(&mut out);
    out
}

/// The traffic-filter message inside a request, if it is one.
pub fn filter(msg: &NetlinkMessage<RouteNetlinkMessage>) -> Option<&TcMessage> {
    match &msg.payload {
        NetlinkPayload::InnerMessage(
            RouteNetlinkMessage::NewTrafficFilter(m)
            | RouteNetlinkMessage::DelTrafficFilter(m)
            | RouteNetlinkMessage::GetTrafficFilter(m),
        ) => Some(m),
        _ => None,
    }
}

/// Set the fields that differ between runs to fixed values: sequence
/// number 0, port id 0, interface index 1.
pub fn normalise(msg: &mut NetlinkMessage<RouteNetlinkMessage>) {
    msg.header.sequence_number = 0;
    msg.header.port_number = 0;
    if let NetlinkPayload::InnerMessage(
        RouteNetlinkMessage::NewTrafficFilter(m)
        | RouteNetlinkMessage::DelTrafficFilter(m)
        | RouteNetlinkMessage::GetTrafficFilter(m),
    ) = &mut msg.payload
    {
        m.header.index = 1;
    }
}
