//! The diagnostic client on a CAN bus: ISO-TP done here, with P2/P2* and bounded concurrency.
//!
//! Concurrency: a semaphore admits at most `max_in_flight` requests on the link; a physical
//! request holds its ECU's lock (one request at a time per ECU); a functional request, which
//! every ECU answers, holds the link exclusively (a read-write lock: physical requests share,
//! functional ones exclude everything), so answers are never mixed up.
//!
//! Timing: an answer counts when it has been received by the time the client looks after P2,
//! even if the client's task woke late; an answer for another service (a late answer to an
//! earlier request) is ignored rather than taken for, or failing, this one.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use telltale_obd::isotp::addressing::{self, Channel};
use telltale_obd::isotp::{Reassembler, ReassemblerEvent, RxEvent, Sender};
use telltale_obd::service::Request;
use telltale_obd::{CanFrame, CanId, EcuId};
use tokio::sync::{RwLock, Semaphore};
use tokio::time::Instant as TokioInstant;

use super::{
    ClientOptions, DiagError, EcuResponse, Target, TroubleLog, decode_answer, functional_outcome,
    is_pending,
};
use crate::bus::{BusError, CanBus, Filter};
use crate::isotp::{IsoTpAddresses, IsoTpSocket};

/// A diagnostic client on one CAN link. Clones share the link and its limits.
#[derive(Debug, Clone)]
pub struct CanClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    bus: CanBus,
    opts: ClientOptions,
    in_flight: Semaphore,
    /// Shared by physical requests, exclusive for functional ones.
    link: RwLock<()>,
    /// One lock per ECU (by response id).
    ecus: Mutex<HashMap<CanId, Arc<tokio::sync::Mutex<()>>>>,
    name: String,
    troubles: TroubleLog,
}

/// Every OBD response id of one width: `7E8`..`7EF`, or `18DAF1xx`.
pub fn response_filter(extended: bool) -> Filter {
    if extended {
        Filter {
            id: 0x18DA_F100,
            mask: 0x1FFF_FF00,
            extended: true,
        }
    } else {
        Filter {
            id: 0x7E8,
            mask: 0x7F8,
            extended: false,
        }
    }
}

impl CanClient {
    pub fn new(bus: CanBus, opts: ClientOptions) -> CanClient {
        CanClient::named(bus, opts, "can")
    }

    /// A client whose logs name the link `name` (`socketcan:can0`).
    pub fn named(bus: CanBus, opts: ClientOptions, name: &str) -> CanClient {
        let permits = opts.max_in_flight.max(1);
        CanClient {
            inner: Arc::new(Inner {
                bus,
                in_flight: Semaphore::new(permits),
                opts,
                link: RwLock::new(()),
                ecus: Mutex::new(HashMap::new()),
                name: name.to_owned(),
                troubles: TroubleLog::default(),
            }),
        }
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The answers this client could not use, by kind.
    pub fn troubles(&self) -> &TroubleLog {
        &self.inner.troubles
    }

    pub fn options(&self) -> &ClientOptions {
        &self.inner.opts
    }

    pub fn bus(&self) -> &CanBus {
        &self.inner.bus
    }

    pub async fn request(
        &self,
        target: Target,
        req: &Request,
    ) -> Result<Vec<EcuResponse>, DiagError> {
        let _permit = self
            .inner
            .in_flight
            .acquire()
            .await
            .map_err(|_| DiagError::Closed)?;
        match target {
            Target::Functional => {
                let _link = self.inner.link.write().await;
                self.functional(req).await
            }
            Target::Physical(ch) => {
                let _link = self.inner.link.read().await;
                let ecu_lock = self.ecu_lock(ch.response);
                let _ecu = ecu_lock.lock().await;
                self.physical(ch, req).await.map(|r| vec![r])
            }
            Target::Node(address) => Err(DiagError::BadRequest(format!(
                "ECU {address:02X} is on a non-CAN bus; this is a CAN link"
            ))),
        }
    }

    fn ecu_lock(&self, ecu: CanId) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.inner.ecus.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(ecu).or_default().clone()
    }

    async fn physical(&self, ch: Channel, req: &Request) -> Result<EcuResponse, DiagError> {
        let opts = &self.inner.opts;
        let ecu = EcuId::Can(ch.response);
        let addrs = IsoTpAddresses {
            tx: ch.request,
            rx: ch.response,
            functional_rx: None,
        };
        let mut sock = IsoTpSocket::new(&self.inner.bus, addrs, opts.isotp);
        let transport = |error| DiagError::Transport { ecu, error };
        sock.send(&req.encode()).await.map_err(transport)?;
        let mut deadline = TokioInstant::now() + opts.p2;
        let mut pending = false;
        loop {
            let Some(msg) = sock.recv_until(deadline).await.map_err(transport)? else {
                return Err(if pending {
                    DiagError::PendingTimeout {
                        ecu,
                        after: opts.p2_star,
                    }
                } else {
                    DiagError::NoResponse {
                        target: Target::Physical(ch),
                        after: opts.p2,
                    }
                });
            };
            let answer = match decode_answer(ecu, &msg.payload, req) {
                Err(DiagError::WrongService { got, .. }) => {
                    // A late answer to an earlier request: not ours, keep waiting for ours.
                    tracing::debug!(%ecu, service = got, "answer to another request ignored");
                    continue;
                }
                other => other?,
            };
            if is_pending(&answer.response) {
                tracing::debug!(%ecu, "response pending; waiting up to P2*");
                pending = true;
                deadline = TokioInstant::now() + opts.p2_star;
                continue;
            }
            return Ok(answer);
        }
    }

    async fn functional(&self, req: &Request) -> Result<Vec<EcuResponse>, DiagError> {
        let opts = &self.inner.opts;
        let bus = &self.inner.bus;
        let payload = req.encode();
        if payload.len() > 7 {
            return Err(DiagError::BadRequest(format!(
                "a functional request must fit one CAN frame (7 bytes), this one has {}",
                payload.len()
            )));
        }
        let request_id = if opts.extended_ids {
            addressing::FUNCTIONAL_REQUEST_29BIT
        } else {
            addressing::FUNCTIONAL_REQUEST_11BIT
        };
        // Subscribe before sending so no early answer is missed.
        let mut sub = bus.subscribe(&[response_filter(opts.extended_ids)]);
        let single = Sender::new(opts.isotp, payload, now())
            .ok()
            .and_then(|mut s| s.poll_frame(now()))
            .ok_or_else(|| DiagError::BadRequest("empty request".into()))?;
        let frame = CanFrame::new(request_id, single.as_slice())
            .map_err(|e| DiagError::BadRequest(e.to_string()))?;
        bus.send(frame).await.map_err(DiagError::Link)?;

        let p2_end = now() + opts.p2;
        let mut reassembler = Reassembler::new(opts.isotp);
        let mut pending: BTreeMap<CanId, Instant> = BTreeMap::new();
        let mut answers = Vec::new();
        let mut failures = Vec::new();
        loop {
            let t = now();
            for e in reassembler.handle_timeout(t) {
                failures.push(DiagError::Transport {
                    ecu: EcuId::Can(e.id),
                    error: crate::isotp::IsoTpTransferError::Protocol {
                        peer: e.id,
                        error: e.error,
                    },
                });
            }
            pending.retain(|&ecu, &mut until| {
                let alive = t < until;
                if !alive {
                    failures.push(DiagError::PendingTimeout {
                        ecu: EcuId::Can(ecu),
                        after: opts.p2_star,
                    });
                }
                alive
            });
            let collecting = t < p2_end;
            let receiving = reassembler.in_progress().next().is_some();
            if !collecting && !receiving && pending.is_empty() {
                break;
            }
            let deadline = [
                collecting.then_some(p2_end),
                reassembler.poll_timeout(),
                pending.values().min().copied(),
            ]
            .into_iter()
            .flatten()
            .min();
            // Biased: an answer already delivered when this task wakes after P2 (a loaded
            // machine, a descheduled process) counts; an unbiased select dropped it at random.
            let frame = tokio::select! {
                biased;
                r = sub.recv() => r,
                () = sleep_until(deadline) => continue,
            };
            let frame = match frame {
                Ok(f) => f,
                Err(BusError::Closed) => return Err(DiagError::Link(BusError::Closed)),
                Err(e) => {
                    tracing::warn!(cause = %e, "CAN link problem during a functional request");
                    continue;
                }
            };
            let ecu = frame.id();
            let event = match reassembler.on_frame(&frame, now()) {
                Ok(r) => r.event,
                Err(e) => {
                    if reassembler.in_progress().all(|id| id != ecu)
                        && matches!(
                            e.error,
                            telltale_obd::isotp::IsoTpError::WrongSequence { .. }
                        )
                    {
                        failures.push(transport_failure(ecu, e.error));
                    } else {
                        tracing::debug!(%ecu, cause = %e, "ignored frame");
                    }
                    continue;
                }
            };
            let ReassemblerEvent::Rx(event) = event else {
                continue; // a flow control from an ECU: another tester's transfer
            };
            let (_, event) = event.into_parts();
            match event {
                RxEvent::Nothing | RxEvent::Restarted { .. } => {}
                RxEvent::SendFlowControl(fc) => self.flow_control(ecu, fc.as_slice()).await?,
                RxEvent::Overflow {
                    flow_control,
                    len,
                    max,
                } => {
                    self.flow_control(ecu, flow_control.as_slice()).await?;
                    failures.push(transport_failure(
                        ecu,
                        telltale_obd::isotp::IsoTpError::ReceiveOverflow { len, max },
                    ));
                }
                RxEvent::Complete(payload) => match decode_answer(ecu.into(), &payload, req) {
                    Ok(answer) if is_pending(&answer.response) => {
                        tracing::debug!(%ecu, "response pending; waiting up to P2*");
                        pending.insert(ecu, now() + opts.p2_star);
                    }
                    Ok(answer) => {
                        pending.remove(&ecu);
                        answers.push(answer);
                    }
                    Err(DiagError::WrongService { got, .. }) => {
                        // A late answer to an earlier request (after its P2): not an answer
                        // to this one, and no reason to give up on this ECU.
                        tracing::debug!(%ecu, service = got, "answer to another request ignored");
                    }
                    Err(e) => {
                        pending.remove(&ecu);
                        failures.push(e);
                    }
                },
            }
        }
        functional_outcome(
            answers,
            failures,
            Target::Functional,
            opts.p2,
            (&self.inner.troubles, &self.inner.name),
        )
    }

    /// Sends our flow control for `ecu`'s multi-frame answer on its physical request id.
    async fn flow_control(&self, ecu: CanId, data: &[u8]) -> Result<(), DiagError> {
        let Some(to) = addressing::request_id(ecu) else {
            return Ok(());
        };
        let frame = CanFrame::new(to, data).map_err(|e| DiagError::BadRequest(e.to_string()))?;
        self.inner.bus.send(frame).await.map_err(DiagError::Link)
    }
}

fn transport_failure(ecu: CanId, error: telltale_obd::isotp::IsoTpError) -> DiagError {
    DiagError::Transport {
        ecu: EcuId::Can(ecu),
        error: crate::isotp::IsoTpTransferError::Protocol { peer: ecu, error },
    }
}

fn now() -> Instant {
    TokioInstant::now().into_std()
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(TokioInstant::from_std(d)).await,
        None => std::future::pending().await,
    }
}
