//! An ISO-TP (ISO 15765-2) endpoint on a [`CanBus`]: one conversation partner, both
//! directions, driving the sans-IO [`telltale_obd::isotp::Sender`] and
//! [`telltale_obd::isotp::Receiver`] with tokio timers.
//!
//! An [`IsoTpSocket`] sends on `tx` and listens on `rx` (the peer's data frames and the flow
//! controls pacing our sends), and optionally on a functional id for single frames (an ECU
//! hears `7DF`; functional requests are single frames by ISO 15765-4). It is full duplex: a
//! message arriving while we send is reassembled (its FCs sent) and handed out by the next
//! [`recv`](IsoTpSocket::recv).
//!
//! Every wait in a transfer is bounded by the ISO-TP timers: N_Bs for a flow control, N_Cr for
//! the next consecutive frame. What it does not bound is how long [`recv`](IsoTpSocket::recv)
//! waits for a message to *start*: a server waits forever; a client wraps the call in its own
//! P2 timeout (cancelling `recv` while it waits is safe, see [`IsoTpSocket::is_receiving`]).
//!
//! Frames that ISO 15765-2 says to ignore (a CF with no message in progress, an FC nobody
//! waits for, malformed frames, multi-frame starts on the functional id) are logged at debug
//! level and dropped. A new SF/FF during a reception replaces the old message, as the standard
//! requires, with a warning.
//!
//! What it does not do: N_As/N_Ar (the bus driver's business), extended or mixed addressing,
//! CAN FD.

use std::collections::VecDeque;
use std::time::Instant;

use telltale_obd::isotp::{Config, FrameData, IsoTpError, Pci, Receiver, RxEvent, Sender};
use telltale_obd::{CanFrame, CanId};
use tokio::time::Instant as TokioInstant;

use crate::bus::{BusError, CanBus, Filter, Subscription};

/// Who we talk to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IsoTpAddresses {
    /// Our frames (data and flow controls) go out on this id.
    pub tx: CanId,
    /// The peer's frames (data and flow controls) come in on this id.
    pub rx: CanId,
    /// Single frames on this id are received too, marked `functional` (an ECU's `7DF`).
    pub functional_rx: Option<CanId>,
}

/// A whole message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub payload: Vec<u8>,
    /// Arrived on `functional_rx`, not `rx`.
    pub functional: bool,
}

/// Why a transfer failed. The socket stays usable after every one of these except
/// `Bus(Closed)`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IsoTpTransferError {
    /// The peer broke the protocol or went quiet: a timeout, a wrong sequence number, an
    /// overflow, too many waits.
    #[error("ISO-TP with {peer}: {error}")]
    Protocol { peer: CanId, error: IsoTpError },
    /// The link failed, or we lost frames in the middle of a reception.
    #[error("ISO-TP with {peer}: {error}")]
    Bus { peer: CanId, error: BusError },
}

/// An ISO-TP endpoint. See the module docs.
#[derive(Debug)]
pub struct IsoTpSocket {
    bus: CanBus,
    sub: Subscription,
    addrs: IsoTpAddresses,
    config: Config,
    rx: Receiver,
    /// Messages (or reception errors) that completed while we were busy sending.
    ready: VecDeque<Result<Received, IsoTpTransferError>>,
}

/// The tokio clock (which `tokio::time::pause` controls) as the `std` instant the sans-IO
/// state machines take.
fn now() -> Instant {
    TokioInstant::now().into_std()
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl IsoTpSocket {
    /// Subscribes to `rx` (and `functional_rx`) on `bus`. Frames sent before this call are not
    /// seen.
    pub fn new(bus: &CanBus, addrs: IsoTpAddresses, config: Config) -> IsoTpSocket {
        let mut filters = vec![Filter::exact(addrs.rx)];
        filters.extend(addrs.functional_rx.map(Filter::exact));
        IsoTpSocket {
            bus: bus.clone(),
            sub: bus.subscribe(&filters),
            addrs,
            config,
            rx: Receiver::new(config),
            ready: VecDeque::new(),
        }
    }

    pub fn addresses(&self) -> IsoTpAddresses {
        self.addrs
    }

    /// True while a multi-frame message is half received. Cancelling [`recv`](Self::recv)
    /// then loses that message; a client's P2 timeout should wait for the first frame only
    /// (this returning true means the peer answered and N_Cr now bounds the rest).
    pub fn is_receiving(&self) -> bool {
        !self.rx.is_idle()
    }

    /// Sends one message (1..=4095 bytes): a single frame, or a first frame and consecutive
    /// frames paced by the peer's flow controls (block size and STmin honoured). Fails after
    /// N_Bs without a flow control, on FC.Overflow, too many FC.WAIT, or a closed link.
    pub async fn send(&mut self, payload: &[u8]) -> Result<(), IsoTpTransferError> {
        let mut tx = Sender::new(self.config, payload, now()).map_err(|e| self.protocol(e))?;
        loop {
            let t = now();
            while let Some(frame) = tx.poll_frame(t) {
                self.transmit(frame).await?;
            }
            if tx.is_done() {
                return Ok(());
            }
            tx.handle_timeout(t).map_err(|e| self.protocol(e))?;
            self.check_rx_timeout(t);
            let Some(deadline) = tx.poll_timeout() else {
                // Not done and no deadline: aborted, which every path above reports already.
                return Err(self.protocol(IsoTpError::UnexpectedFrame {
                    got: telltale_obd::isotp::FrameKind::FlowControl,
                    during: "after the transfer was aborted",
                }));
            };
            let Some(frame) = self
                .wait(earliest(Some(deadline), self.rx.poll_timeout()))
                .await?
            else {
                continue;
            };
            if frame.id() == self.addrs.rx && Pci::decode(frame.data()).is_ok_and(is_fc) {
                match tx.on_flow_control(frame.data(), now()) {
                    Ok(()) => {}
                    Err(e) if tx.is_aborted() => return Err(self.protocol(e)),
                    Err(e) => tracing::debug!(peer = %self.addrs.rx, cause = %e, "ignored frame"),
                }
            } else {
                self.on_data_frame(frame).await?;
            }
        }
    }

    /// The next message from the peer (or a single frame on the functional id). Errors report
    /// a reception that failed (N_Cr timeout, wrong sequence number, lost frames, a message
    /// over our limit); the socket is then ready for the next message. Waits without bound
    /// for a message to start; `Bus(Closed)` when the link goes away.
    pub async fn recv(&mut self) -> Result<Received, IsoTpTransferError> {
        loop {
            if let Some(r) = self.recv_inner(None).await? {
                return Ok(r);
            }
        }
    }

    /// Like [`recv`](Self::recv), but gives up with `Ok(None)` when no message has started by
    /// `start_by`. A message whose first frame came in time is received to its end (N_Cr
    /// bounds each wait), so a client's P2 deadline never cuts an ECU's answer in half.
    pub async fn recv_until(
        &mut self,
        start_by: TokioInstant,
    ) -> Result<Option<Received>, IsoTpTransferError> {
        self.recv_inner(Some(start_by.into_std())).await
    }

    async fn recv_inner(
        &mut self,
        start_by: Option<Instant>,
    ) -> Result<Option<Received>, IsoTpTransferError> {
        loop {
            if let Some(r) = self.ready.pop_front() {
                return r.map(Some);
            }
            let t = now();
            self.check_rx_timeout(t);
            if let Some(r) = self.ready.pop_front() {
                return r.map(Some);
            }
            let deadline = if self.rx.is_idle() {
                if start_by.is_some_and(|s| t >= s) {
                    return Ok(None);
                }
                start_by
            } else {
                self.rx.poll_timeout()
            };
            if let Some(frame) = self.wait(deadline).await? {
                if frame.id() == self.addrs.rx && Pci::decode(frame.data()).is_ok_and(is_fc) {
                    tracing::debug!(peer = %self.addrs.rx, "flow control while not sending: ignored");
                } else {
                    self.on_data_frame(frame).await?;
                }
            }
        }
    }

    fn protocol(&self, error: IsoTpError) -> IsoTpTransferError {
        IsoTpTransferError::Protocol {
            peer: self.addrs.rx,
            error,
        }
    }

    fn bus_error(&self, error: BusError) -> IsoTpTransferError {
        IsoTpTransferError::Bus {
            peer: self.addrs.rx,
            error,
        }
    }

    async fn transmit(&self, data: FrameData) -> Result<(), IsoTpTransferError> {
        // FrameData never holds more than 8 bytes, so this cannot fail; map it all the same.
        let frame = CanFrame::new(self.addrs.tx, data.as_slice())
            .map_err(|e| self.bus_error(BusError::Io(e.to_string())))?;
        self.bus.send(frame).await.map_err(|e| self.bus_error(e))
    }

    fn check_rx_timeout(&mut self, t: Instant) {
        if let Err(e) = self.rx.handle_timeout(t) {
            let err = self.protocol(e);
            self.ready.push_back(Err(err));
        }
    }

    /// The next frame, or `None` at `deadline` (or after a bus hiccup worth re-checking the
    /// timers for). Only a closed link is an error.
    async fn wait(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<Option<CanFrame>, IsoTpTransferError> {
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(TokioInstant::from_std(d)).await,
                None => std::future::pending().await,
            }
        };
        // Biased: when this task wakes late (a loaded machine) with a frame already delivered
        // and the deadline passed, the frame counts; an unbiased select dropped it at random.
        let result = tokio::select! {
            biased;
            r = self.sub.recv() => r,
            () = sleep => return Ok(None),
        };
        match result {
            Ok(frame) => Ok(Some(frame)),
            Err(BusError::Closed) => Err(self.bus_error(BusError::Closed)),
            Err(e @ BusError::Overrun { .. }) if !self.rx.is_idle() => {
                // Frames of the message in progress may be among the lost: give it up.
                self.rx.reset();
                let err = self.bus_error(e);
                self.ready.push_back(Err(err));
                Ok(None)
            }
            Err(e) => {
                tracing::warn!(peer = %self.addrs.rx, cause = %e, "CAN link problem");
                Ok(None)
            }
        }
    }

    /// A frame that is not a flow control for our sender: reception.
    async fn on_data_frame(&mut self, frame: CanFrame) -> Result<(), IsoTpTransferError> {
        let peer = self.addrs.rx;
        if frame.id() != peer {
            // The functional id: single frames only.
            match Pci::decode(frame.data()) {
                Ok((Pci::Single { .. }, payload)) => self.ready.push_back(Ok(Received {
                    payload: payload.to_vec(),
                    functional: true,
                })),
                Ok((other, _)) => {
                    tracing::debug!(id = %frame.id(), kind = %other.kind(), "ignored on the functional id")
                }
                Err(e) => tracing::debug!(id = %frame.id(), cause = %e, "ignored frame"),
            }
            return Ok(());
        }
        let was_receiving = !self.rx.is_idle();
        let event = match self.rx.on_frame(frame.data(), now()) {
            Ok(event) => event,
            Err(e) if was_receiving && self.rx.is_idle() => {
                // The error ended the reception (a wrong sequence number).
                let err = self.protocol(e);
                self.ready.push_back(Err(err));
                return Ok(());
            }
            Err(e) => {
                tracing::debug!(%peer, cause = %e, "ignored frame");
                return Ok(());
            }
        };
        let (dropped, event) = event.into_parts();
        if let Some(p) = dropped {
            tracing::warn!(
                %peer,
                received = p.received,
                expected = p.expected,
                "new message before the last was complete; the last is dropped"
            );
        }
        match event {
            RxEvent::Nothing | RxEvent::Restarted { .. } => {}
            RxEvent::SendFlowControl(fc) => self.transmit(fc).await?,
            RxEvent::Complete(payload) => self.ready.push_back(Ok(Received {
                payload,
                functional: false,
            })),
            RxEvent::Overflow {
                flow_control,
                len,
                max,
            } => {
                self.transmit(flow_control).await?;
                let err = self.protocol(IsoTpError::ReceiveOverflow { len, max });
                self.ready.push_back(Err(err));
            }
        }
        Ok(())
    }
}

fn is_fc((pci, _): (Pci, &[u8])) -> bool {
    matches!(pci, Pci::FlowControl { .. })
}
