//! Link notifications (rtnetlink's RTMGRP_LINK group), so an interface of
//! the filter that is deleted and created again is attached to as soon as
//! it is back, not on the next poll.

use futures_util::StreamExt as _;
use futures_util::stream::BoxStream;
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage};
use rtnetlink::sys::SocketAddr;
use rtnetlink::{MulticastGroup, new_multicast_connection};
use tokio::task::JoinHandle;

type Messages = BoxStream<'static, (NetlinkMessage<RouteNetlinkMessage>, SocketAddr)>;

pub struct Links {
    messages: Messages,
    connection: JoinHandle<()>,
}

impl Links {
    /// Subscribes to the link notifications of this network namespace.
    /// Needs the runtime.
    pub fn open() -> std::io::Result<Links> {
        let (connection, _handle, messages) = new_multicast_connection(&[MulticastGroup::Link])?;
        Ok(Links {
            messages: messages.boxed(),
            connection: tokio::spawn(connection),
        })
    }

    /// The next change: `Some(Some(name))` when the link `name` appeared,
    /// changed or went; `Some(None)` when the socket's buffer overran and
    /// notifications were lost, so every interface must be checked; `None`
    /// when the notifications have ended.
    pub async fn next(&mut self) -> Option<Option<String>> {
        loop {
            let (message, _) = self.messages.next().await?;
            match message.payload {
                NetlinkPayload::Overrun(_) => return Some(None),
                NetlinkPayload::InnerMessage(
                    RouteNetlinkMessage::NewLink(link) | RouteNetlinkMessage::DelLink(link),
                ) => {
                    if let Some(name) = name(&link) {
                        return Some(Some(name));
                    }
                }
                _ => {}
            }
        }
    }
}

impl Drop for Links {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

fn name(link: &LinkMessage) -> Option<String> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(name) => Some(name.clone()),
        _ => None,
    })
}
