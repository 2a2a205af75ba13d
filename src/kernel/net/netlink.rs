//! A small synchronous rtnetlink client: the messages `ip link`, `ip addr`
//! and `ip route` send to the kernel, sent by the lab itself.

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// A NETLINK_ROUTE socket in the network namespace of the thread that
/// opened it.
pub struct Netlink {
    socket: Socket,
    sequence: u32,
}

/// What a request asks the kernel to do with an existing object.
#[derive(Debug, Clone, Copy)]
pub enum Create {
    /// Fail if it exists (`ip link add`).
    New,
    /// Change an existing one (`ip link set`).
    Change,
}

impl Netlink {
    pub fn open() -> std::io::Result<Netlink> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        Ok(Netlink {
            socket,
            sequence: 0,
        })
    }

    /// Sends one request and waits for the kernel's acknowledgement.
    pub fn request(&mut self, message: RouteNetlinkMessage, create: Create) -> std::io::Result<()> {
        let flags = match create {
            Create::New => NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            Create::Change => NLM_F_REQUEST | NLM_F_ACK,
        };
        self.send(message, flags)?;
        loop {
            for reply in self.receive()? {
                if let NetlinkPayload::Error(error) = reply.payload {
                    return match error.code {
                        None => Ok(()),
                        Some(_) => Err(error.to_io()),
                    };
                }
            }
        }
    }

    /// `ip link show`: every link of this namespace.
    pub fn links(&mut self) -> std::io::Result<Vec<LinkMessage>> {
        self.send(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            NLM_F_REQUEST | NLM_F_DUMP,
        )?;
        let mut links = Vec::new();
        loop {
            for reply in self.receive()? {
                match reply.payload {
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => {
                        links.push(link)
                    }
                    NetlinkPayload::Done(_) => return Ok(links),
                    NetlinkPayload::Error(error) if error.code.is_some() => {
                        return Err(error.to_io())
                    }
                    _ => {}
                }
            }
        }
    }

    /// The index of the link called `name`, if there is one: one link
    /// looked up by the kernel by name (`ip link show NAME`), not a dump.
    pub fn index_of(&mut self, name: &str) -> std::io::Result<Option<u32>> {
        // The kernel refuses a name longer than IFNAMSIZ - 1; no link has one.
        if name.is_empty() || name.len() >= libc::IFNAMSIZ {
            return Ok(None);
        }
        let mut request = LinkMessage::default();
        request
            .attributes
            .push(LinkAttribute::IfName(name.to_string()));
        self.send(RouteNetlinkMessage::GetLink(request), NLM_F_REQUEST)?;
        loop {
            for reply in self.receive()? {
                match reply.payload {
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => {
                        return Ok(Some(link.header.index))
                    }
                    NetlinkPayload::Error(error) if error.code.is_some() => {
                        let error = error.to_io();
                        return match error.raw_os_error() {
                            Some(libc::ENODEV) => Ok(None),
                            _ => Err(error),
                        };
                    }
                    _ => {}
                }
            }
        }
    }

    fn send(&mut self, message: RouteNetlinkMessage, flags: u16) -> std::io::Result<()> {
        self.sequence += 1;
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.sequence;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(message));
        packet.finalize();
        let mut buffer = vec![0; packet.buffer_len()];
        packet.serialize(&mut buffer);
        self.socket.send(&buffer, 0)?;
        Ok(())
    }

    fn receive(&mut self) -> std::io::Result<Vec<NetlinkMessage<RouteNetlinkMessage>>> {
        let (bytes, _) = self.socket.recv_from_full()?;
        let mut messages = Vec::new();
        let mut offset = 0;
        while offset < bytes.len() {
            let message = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&bytes[offset..])
                .map_err(|e| std::io::Error::other(format!("bad netlink reply: {e}")))?;
            let length = message.header.length as usize;
            messages.push(message);
            if length == 0 {
                break;
            }
            offset += (length + 3) & !3;
        }
        Ok(messages)
    }
}
