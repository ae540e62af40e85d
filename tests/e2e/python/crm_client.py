"""The CRM's gRPC API as a Python shop system meets it: grpcio with stubs that grpc_tools
compiled from proto/, the standard health check, server reflection in both versions (the
grpcio-reflection client over v1alpha, a stub of the canonical v1 proto), and the lead and
quote calls with `authorization: Bearer <token>` metadata, including the status codes a
client branches on.

Run by tests/e2e/tests/python_peers.rs against a real telltale-crm. Every check raises with
what was expected and what came; the last line of stdout is a JSON summary the Rust test
compares with what its own client and the database say.
"""

import argparse
import time

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

import reflection_v1_pb2
from checks import check, expect_equal, report
import reflection_v1_pb2_grpc
from telltale.crm.v1 import catalog_pb2, catalog_pb2_grpc
from telltale.crm.v1 import leads_pb2, leads_pb2_grpc
from telltale.crm.v1 import quotes_pb2, quotes_pb2_grpc

# Every service the CRM serves, as reflection must list it.
SERVICES = sorted(
    [
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
        "telltale.crm.v1.CatalogService",
        "telltale.crm.v1.LeadService",
        "telltale.crm.v1.QuoteService",
    ]
)
# The services whose descriptors must match the ones compiled here from proto/.
OURS = {
    "telltale.crm.v1.LeadService": leads_pb2,
    "telltale.crm.v1.QuoteService": quotes_pb2,
    "telltale.crm.v1.CatalogService": catalog_pb2,
}
CATALYST_VIN = "JTDKARFU1H3541802"  # a 2017 Toyota Prius
MISFIRE_VIN = "1FMCU9GD4KUA37218"  # a 2019 Ford Escape
TIMEOUT = 20  # seconds, for every call
ROLES = ("manager", "advisor", "integration", "rival")
E = grpc.StatusCode


def bearer(token):
    """Call metadata carrying `token` the way the API documents it."""
    return (("authorization", f"Bearer {token}"),)


class Crm:
    """The three services' stubs, and calls made as one caller or another."""

    def __init__(self, channel, tokens):
        self.leads = leads_pb2_grpc.LeadServiceStub(channel)
        self.quotes = quotes_pb2_grpc.QuoteServiceStub(channel)
        self.catalog = catalog_pb2_grpc.CatalogServiceStub(channel)
        self.tokens = tokens

    def call(self, method, request, who):
        """`method(request)` as `who`: a role given a token, or metadata as it is."""
        metadata = bearer(self.tokens[who]) if isinstance(who, str) else who
        return method(request, metadata=metadata, timeout=TIMEOUT)

    def refused(self, code, what, method, request, who):
        """The call must fail with `code`; returns the error's details."""
        return refused(code, what, lambda: self.call(method, request, who))


def refused(code, what, call):
    """`call()` must fail with `code`; returns the error's details."""
    try:
        answer = call()
    except grpc.RpcError as e:
        expect_equal(e.code(), code, f"{what}: status code (details {e.details()!r})")
        return e.details()
    raise AssertionError(f"{what}: expected {code}, got an answer: {answer}")


def health(channel):
    stub = health_pb2_grpc.HealthStub(channel)
    serving = health_pb2.HealthCheckResponse.SERVING
    for service in ["", *OURS]:
        got = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=TIMEOUT)
        expect_equal(got.status, serving, f"health of {service!r}")
    # The standard says an unknown service is NOT_FOUND (what load balancers rely on).
    unknown = health_pb2.HealthCheckRequest(service="telltale.crm.v1.NoSuchService")
    refused(
        grpc.StatusCode.NOT_FOUND,
        "health of an unknown service",
        lambda: stub.Check(unknown, timeout=TIMEOUT),
    )


def same_fields(served, local, what):
    """The served message type has the fields of the one compiled from proto/."""
    shape = lambda d: [
        (f.name, f.number, f.type, f.is_repeated, f.message_type and f.message_type.full_name)
        for f in d.fields
    ]
    expect_equal(shape(served), shape(local), f"{what}: fields as served")


def reflection_v1alpha(channel):
    """grpcio-reflection's client, as Python tools use it: the served descriptors become a
    descriptor pool, and every method of ours resolves to the types proto/ declares."""
    db = ProtoReflectionDescriptorDatabase(channel)
    expect_equal(sorted(db.get_services()), SERVICES, "v1alpha: services listed")
    pool = descriptor_pool.DescriptorPool(db)
    methods = 0
    for name, module in OURS.items():
        served = pool.FindServiceByName(name)
        local = module.DESCRIPTOR.services_by_name[name.rsplit(".", 1)[1]]
        expect_equal(
            [m.name for m in served.methods], [m.name for m in local.methods], f"{name} methods"
        )
        for m in served.methods:
            lm = local.methods_by_name[m.name]
            expect_equal(m.input_type.full_name, lm.input_type.full_name, f"{m.full_name} input")
            expect_equal(m.output_type.full_name, lm.output_type.full_name, f"{m.full_name} output")
            expect_equal(
                (m.client_streaming, m.server_streaming),
                (lm.client_streaming, lm.server_streaming),
                f"{m.full_name} streaming",
            )
            same_fields(m.input_type, lm.input_type, m.input_type.full_name)
            same_fields(m.output_type, lm.output_type, m.output_type.full_name)
            methods += 1
    create = pool.FindMethodByName("telltale.crm.v1.LeadService.CreateLead")
    expect_equal(
        create.input_type.full_name, "telltale.crm.v1.CreateLeadRequest", "CreateLead input"
    )
    expect_equal(
        [f.name for f in create.input_type.fields],
        ["idempotency_key", "vin", "device_id", "reason", "codes", "ecu", "detected_unix_ms"],
        "CreateLeadRequest fields as served",
    )
    expect_equal(
        pool.FindMethodByName("telltale.crm.v1.LeadService.WatchLeads").server_streaming,
        True,
        "WatchLeads streams",
    )
    # An unknown name. The reflection protocol answers it with an ErrorResponse in the stream
    # (which this client turns into KeyError); tonic-reflection 0.14 ends the stream with a
    # NOT_FOUND status instead, which reaches the caller as grpc.RpcError. Either way it must
    # say "not found", and the database must go on answering.
    try:
        pool.FindMessageTypeByName("telltale.crm.v1.NoSuchThing")
        raise AssertionError("v1alpha: an unknown type was found")
    except KeyError:
        pass
    except grpc.RpcError as e:
        expect_equal(e.code(), grpc.StatusCode.NOT_FOUND, "v1alpha: an unknown type")
    expect_equal(
        pool.FindMessageTypeByName("telltale.crm.v1.Slot").fields_by_name["free_bays"].number,
        3,
        "v1alpha: a lookup after a miss",
    )
    return pool, methods


def reflection_v1(channel):
    """A stub compiled from the canonical grpc/reflection/v1 proto: the raw stream, as grpcurl
    and other current tools speak it."""
    stub = reflection_v1_pb2_grpc.ServerReflectionStub(channel)
    Req = reflection_v1_pb2.ServerReflectionRequest
    asks = [
        Req(list_services=""),
        Req(file_containing_symbol="telltale.crm.v1.QuoteService.BookAppointment"),
    ]
    answers = list(stub.ServerReflectionInfo(iter(asks), timeout=TIMEOUT))
    expect_equal(len(answers), 2, "v1: one answer per request")
    expect_equal([a.original_request for a in answers], asks, "v1: each answer names its request")
    listed = sorted(s.name for s in answers[0].list_services_response.service)
    expect_equal(listed, SERVICES, "v1: services listed")
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(b)
        for b in answers[1].file_descriptor_response.file_descriptor_proto
    ]
    check(files, "v1: the file declaring QuoteService", answers[1])
    # Its imports by name, as a client fetches them (a server need not send them unasked).
    wanted = [d for f in files for d in f.dependency]
    while wanted:
        name = wanted.pop()
        if any(f.name == name for f in files):
            continue
        (answer,) = stub.ServerReflectionInfo(iter([Req(file_by_filename=name)]), timeout=TIMEOUT)
        (raw,) = answer.file_descriptor_response.file_descriptor_proto
        got = descriptor_pb2.FileDescriptorProto.FromString(raw)
        expect_equal(got.name, name, "v1: a file by its name")
        files.append(got)
        wanted += got.dependency
    expect_equal(
        sorted(f.name for f in files),
        ["telltale/crm/v1/leads.proto", "telltale/crm/v1/quotes.proto"],
        "v1: QuoteService's file and its import",
    )
    book = [
        m
        for f in files
        if f.package == "telltale.crm.v1"
        for s in f.service
        if s.name == "QuoteService"
        for m in s.method
        if m.name == "BookAppointment"
    ]
    expect_equal(len(book), 1, "v1: BookAppointment in the served files")
    expect_equal(book[0].input_type, ".telltale.crm.v1.BookAppointmentRequest", "v1: its input")
    expect_equal(book[0].output_type, ".telltale.crm.v1.Appointment", "v1: its output")
    # Every type the served files name is in them (a client can build every request).
    declared = {f".{f.package}.{m.name}" for f in files for m in f.message_type}
    for f in files:
        for m in f.message_type:
            for field in m.field:
                if field.type == descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE:
                    check(
                        field.type_name in declared,
                        f"v1: {m.name}.{field.name}'s type served",
                        field.type_name,
                    )


def shop():
    """A shop open around the clock, so any hour finds free slots."""
    return catalog_pb2.Shop(
        id="main",
        name="Main Street Auto",
        currency="USD",
        labor_rate_minor=15_000,
        diagnostic_fee_minor=12_000,
        supplies_bp=1_000,
        supplies_cap_minor=4_000,
        tax_bp=825,
        tax_labor=False,
        hours=[
            catalog_pb2.OpeningHours(weekday=d, open_minute=0, close_minute=1440)
            for d in range(1, 8)
        ],
        bays=2,
        slot_minutes=60,
        is_default=True,
        phone="555-0100",
        address="1 Main Street",
    )


def dtc_lead(key, vin, code):
    return leads_pb2.CreateLeadRequest(
        idempotency_key=key,
        vin=vin,
        device_id="py-dongle",
        reason=leads_pb2.CONFIRMED_DTC,
        codes=[code],
        ecu=0x7E8,
        detected_unix_ms=int(time.time() * 1000),
    )


def access(crm):
    """Who may call: no token, a made-up one, one without `Bearer `, a role without the
    right; and a tenant without a shop cannot take leads yet."""
    L = leads_pb2
    everyone = L.ListLeadsRequest()
    crm.refused(E.UNAUTHENTICATED, "no token", crm.leads.ListLeads, everyone, None)
    crm.refused(
        E.UNAUTHENTICATED, "a made-up token", crm.leads.ListLeads, everyone, bearer("tt_made_up")
    )
    crm.refused(
        E.UNAUTHENTICATED,
        "a token without 'Bearer '",
        crm.leads.ListLeads,
        everyone,
        (("authorization", crm.tokens["advisor"]),),
    )
    crm.refused(
        E.PERMISSION_DENIED, "an advisor puts a shop", crm.catalog.PutShop, shop(), "advisor"
    )
    details = crm.refused(
        E.FAILED_PRECONDITION,
        "a lead before the tenant has a shop",
        crm.leads.CreateLead,
        dtc_lead("py:early", CATALYST_VIN, "P0420"),
        "integration",
    )
    check("no default shop" in details, "the refusal says why", details)


def setup(crm):
    put = crm.call(crm.catalog.PutShop, shop(), "manager")
    expect_equal(
        (put.id, put.labor_rate_minor, put.tax_bp, len(put.hours), put.is_default),
        ("main", 15_000, 825, 7, True),
        "the shop as stored",
    )
    ann = catalog_pb2.Advisor(id="ann", shop_id="main", name="Ann", active=True)
    expect_equal(crm.call(crm.catalog.PutAdvisor, ann, "manager"), ann, "the advisor as stored")


def leads(crm, channel, pool):
    """Leads made, watched, read (also through reflection), refused, assigned and paged.
    Returns the two leads made."""
    L = leads_pb2
    # A watcher, subscribed before the lead is made: the server sends its headers once it is.
    watch = crm.leads.WatchLeads(
        L.WatchLeadsRequest(), metadata=bearer(crm.tokens["advisor"]), timeout=60
    )
    watch.initial_metadata()

    request = dtc_lead("py:JTD:P0420:1", CATALYST_VIN, "P0420")
    made = crm.call(crm.leads.CreateLead, request, "integration")
    lead = made.lead
    expect_equal(made.created, True, "CreateLead created")
    check(lead.id.startswith("ld_"), "a lead id", lead.id)
    expect_equal(
        (lead.tenant_id, lead.shop_id, lead.vin, lead.device_id, lead.status, lead.reason),
        ("acme", "main", CATALYST_VIN, "py-dongle", L.NEW, L.CONFIRMED_DTC),
        "the new lead",
    )
    expect_equal([(f.code, f.ecu) for f in lead.faults], [("P0420", 0x7E8)], "its faults")
    check("catalytic converter" in lead.faults[0].description, "P0420 explained", lead.faults[0])
    expect_equal(lead.severity, L.CAN_WAIT, "P0420's urgency")
    check(lead.quote_id, "a quote priced with the lead", lead)
    again = crm.call(crm.leads.CreateLead, request, "integration")
    expect_equal((again.created, again.lead.id), (False, lead.id), "the same key again")

    event = next(watch)
    expect_equal(
        (event.change, event.lead.id), (L.LeadEvent.CREATED, lead.id), "the watcher's event"
    )
    watch.cancel()

    by_id = L.GetLeadRequest(id=lead.id)
    expect_equal(crm.call(crm.leads.GetLead, by_id, "advisor"), lead, "GetLead")
    # The same call built from the descriptors reflection served, as grpcurl and Postman do.
    dynamic = lambda name: message_factory.GetMessageClass(pool.FindMessageTypeByName(name))
    get_lead = channel.unary_unary(
        "/telltale.crm.v1.LeadService/GetLead",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=dynamic("telltale.crm.v1.Lead").FromString,
    )
    got = crm.call(get_lead, dynamic("telltale.crm.v1.GetLeadRequest")(id=lead.id), "advisor")
    expect_equal(
        (got.id, got.vin, got.faults[0].code),
        (lead.id, CATALYST_VIN, "P0420"),
        "GetLead through reflection",
    )

    # Bad input, unknown ids and other tenants.
    for key, vin, code, words in [
        ("py:bad-vin", "not a vin!", "P0420", "not a VIN"),
        ("py:bad-code", CATALYST_VIN, "X123", "not a trouble code"),
    ]:
        details = crm.refused(
            E.INVALID_ARGUMENT, words, crm.leads.CreateLead, dtc_lead(key, vin, code), "integration"
        )
        check(words in details, f"the refusal says {words!r}", details)
    nobody = L.GetLeadRequest(id="ld_000000000000000000000000")
    crm.refused(E.NOT_FOUND, "an unknown lead", crm.leads.GetLead, nobody, "advisor")
    crm.refused(E.NOT_FOUND, "another tenant's lead", crm.leads.GetLead, by_id, "rival")
    crm.refused(
        E.NOT_FOUND,
        "another tenant's quote",
        crm.quotes.GetQuote,
        quotes_pb2.GetQuoteRequest(id=lead.quote_id),
        "rival",
    )
    rivals = crm.call(crm.leads.ListLeads, L.ListLeadsRequest(), "rival")
    expect_equal(list(rivals.leads), [], "the other tenant's list")

    # Assignment: an integration may not, an advisor may.
    assign = L.AssignLeadRequest(id=lead.id, advisor_id="ann")
    crm.refused(
        E.PERMISSION_DENIED, "an integration assigns", crm.leads.AssignLead, assign, "integration"
    )
    expect_equal(crm.call(crm.leads.AssignLead, assign, "advisor").advisor_id, "ann", "assigned")

    # A second lead, then the list in pages of one.
    request = dtc_lead("py:1FM:P0301:1", MISFIRE_VIN, "P0301")
    second = crm.call(crm.leads.CreateLead, request, "integration").lead
    expect_equal(second.severity, L.STOP_NOW, "a misfire's urgency")
    seen, token = [], ""
    for _ in range(5):
        page = crm.call(
            crm.leads.ListLeads, L.ListLeadsRequest(page_size=1, page_token=token), "advisor"
        )
        check(len(page.leads) <= 1, "a page of one", page)
        seen += [l.id for l in page.leads]
        token = page.next_page_token
        if not token:
            break
    expect_equal(sorted(seen), sorted([lead.id, second.id]), "every lead once over the pages")
    expect_equal(listed(crm, L.BOOKED), [], "nothing booked yet")
    return lead, second


def listed(crm, status):
    """The ids of the leads in `status`."""
    answer = crm.call(crm.leads.ListLeads, leads_pb2.ListLeadsRequest(status=[status]), "advisor")
    return [l.id for l in answer.leads]


def option_arithmetic(quote):
    """Each option's total is the sum of its lines, and each line is quantity times unit (labor
    in tenths of an hour); supplies and tax are the CRM's own lines."""
    Q = quotes_pb2
    for o in quote.options:
        total = sum(l.amount_minor for l in o.lines)
        expect_equal(total, o.total_minor, f"option {o.id}: total is the sum of its lines")
        for l in o.lines:
            what = f"option {o.id}: line {l.description!r}"
            if l.kind == Q.LINE_KIND_LABOR:
                expect_equal(l.amount_minor, l.quantity * l.unit_minor // 10, what)
            elif l.kind in (Q.LINE_KIND_PART, Q.LINE_KIND_FEE):
                expect_equal(l.amount_minor, l.quantity * l.unit_minor, what)


def revision_of(quote):
    """A revision the advisor writes by hand: diagnosis, two O2 sensors, 1.5 h of labor."""
    Q = quotes_pb2
    line = lambda kind, what, quantity, unit, job="o2": Q.QuoteLine(
        kind=kind, description=what, quantity=quantity, unit_minor=unit, job=job
    )
    return Q.ReviseQuoteRequest(
        id=quote.id,
        version=quote.version,
        options=[
            Q.OptionRevision(
                id="o2",
                title="Downstream oxygen sensors",
                includes="Diagnosis, two sensors, fitting",
                recommended=True,
                lines=[
                    line(Q.LINE_KIND_FEE, "Diagnosis", 1, 12_000, job=""),
                    line(Q.LINE_KIND_PART, "Oxygen sensor", 2, 4_550),
                    line(Q.LINE_KIND_LABOR, "Replace sensors", 15, 15_000),
                ],
            )
        ],
        assumptions=["Both downstream sensors read lazy on the scope."],
    )


def quote_flow(crm, lead, second, http_port):
    """The quote: priced as a draft, revised, sent, accepted, booked; another declined."""
    Q = quotes_pb2
    quote = crm.call(crm.quotes.GetQuote, Q.GetQuoteRequest(id=lead.quote_id), "advisor")
    expect_equal(
        (quote.lead_id, quote.shop_id, quote.vin, quote.currency, quote.status, quote.version),
        (lead.id, "main", CATALYST_VIN, "USD", Q.QUOTE_STATUS_DRAFT, 1),
        "the quote",
    )
    option_arithmetic(quote)
    # The shipped knowledge base and catalog priced at this shop (the figures the README's
    # demo prints for the same car and code): diagnosis, then economy, OE-equivalent and OEM
    # parts for the most likely repair.
    totals = {o.id: o.total_minor for o in quote.options}
    expect_equal(
        totals,
        {"diagnosis": 12_000, "good": 72_957, "better": 111_494, "best": 253_302},
        "the options' totals",
    )
    expect_equal(
        (quote.most_likely_minor, quote.low_minor, quote.high_minor),
        (111_494, 29_272, 253_302),
        "the estimate: most likely, low, high",
    )
    expect_equal([o.id for o in quote.options if o.recommended], ["better"], "recommended")

    # Supplies 10 % of $225.00 = $22.50; tax 8.25 % of ($91.00 + $22.50) = $9.36375 -> $9.36;
    # $120.00 + $91.00 + $225.00 + $22.50 + $9.36 = $467.86.
    revision = revision_of(quote)
    revised = crm.call(crm.quotes.ReviseQuote, revision, "advisor")
    expect_equal((revised.version, [o.id for o in revised.options]), (2, ["o2"]), "the revision")
    option_arithmetic(revised)
    by_kind = {}
    for l in revised.options[0].lines:
        by_kind[l.kind] = by_kind.get(l.kind, 0) + l.amount_minor
    expect_equal(
        by_kind,
        {
            Q.LINE_KIND_FEE: 12_000,
            Q.LINE_KIND_PART: 9_100,
            Q.LINE_KIND_LABOR: 22_500,
            Q.LINE_KIND_SUPPLIES: 2_250,
            Q.LINE_KIND_TAX: 936,
        },
        "the revised lines by kind",
    )
    expect_equal(revised.options[0].total_minor, 46_786, "the revised total")
    expect_equal(list(revised.assumptions), list(revision.assumptions), "assumptions replaced")
    crm.refused(
        E.ABORTED, "a revision of version 1 again", crm.quotes.ReviseQuote, revision, "advisor"
    )

    send = Q.SendQuoteRequest(id=quote.id, valid_hours=24)
    sent = crm.call(crm.quotes.SendQuote, send, "advisor")
    check(sent.url.startswith(f"http://127.0.0.1:{http_port}/q/"), "the owner's link", sent.url)
    expect_equal(sent.quote.status, Q.QUOTE_STATUS_SENT, "sent")
    expect_equal(
        sent.quote.link_expires_unix_ms - sent.quote.sent_unix_ms, 24 * 3_600_000, "valid 24 h"
    )
    too_long = Q.SendQuoteRequest(id=quote.id, valid_hours=100_000)
    crm.refused(
        E.INVALID_ARGUMENT, "a link for 11 years", crm.quotes.SendQuote, too_long, "advisor"
    )
    accept = Q.AcceptQuoteRequest(id=quote.id, option_id="o2")
    accepted = crm.call(crm.quotes.AcceptQuote, accept, "advisor")
    expect_equal(
        (accepted.status, accepted.accepted_option_id),
        (Q.QUOTE_STATUS_ACCEPTED, "o2"),
        "accepted by phone",
    )

    slots = crm.call(crm.quotes.ListSlots, Q.ListSlotsRequest(shop_id="main"), "advisor").slots
    check(slots, "free slots in a shop open around the clock", slots)
    first = slots[0]
    expect_equal(
        (first.end_unix_ms - first.start_unix_ms, first.free_bays),
        (3_600_000, 2),
        "a one-hour slot with both bays free",
    )
    book = Q.BookAppointmentRequest(quote_id=quote.id, start_unix_ms=first.start_unix_ms)
    appointment = crm.call(crm.quotes.BookAppointment, book, "advisor")
    expect_equal(
        (appointment.shop_id, appointment.lead_id, appointment.quote_id),
        ("main", lead.id, quote.id),
        "the appointment's shop, lead and quote",
    )
    expect_equal(
        (appointment.start_unix_ms, appointment.end_unix_ms),
        (first.start_unix_ms, first.end_unix_ms),
        "the appointment's hour",
    )
    after = crm.call(crm.quotes.ListSlots, Q.ListSlotsRequest(shop_id="main"), "advisor").slots
    expect_equal(
        [s.free_bays for s in after if s.start_unix_ms == first.start_unix_ms],
        [1],
        "one bay left at the booked hour",
    )
    expect_equal(listed(crm, leads_pb2.BOOKED), [lead.id], "the booked list")

    decline = Q.DeclineQuoteRequest(id=second.quote_id, reason="Will sell the car")
    declined = crm.call(crm.quotes.DeclineQuote, decline, "advisor")
    expect_equal(
        (declined.status, declined.decline_reason),
        (Q.QUOTE_STATUS_DECLINED, "Will sell the car"),
        "declined",
    )
    book = Q.BookAppointmentRequest(quote_id=second.quote_id, start_unix_ms=first.start_unix_ms)
    crm.refused(
        E.FAILED_PRECONDITION,
        "booking a declined quote",
        crm.quotes.BookAppointment,
        book,
        "advisor",
    )
    return {
        "quote_id": quote.id,
        "quote_version": accepted.version,
        "accepted_option": accepted.accepted_option_id,
        "accepted_total_minor": accepted.options[0].total_minor,
        "first_quote_totals": totals,
        "appointment_id": appointment.id,
        "appointment_start_unix_ms": appointment.start_unix_ms,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--target", required=True, help="host:port of the CRM's gRPC API")
    p.add_argument("--http-port", required=True, type=int, help="the CRM's quote page port")
    for role in ROLES:
        p.add_argument(f"--{role}", required=True, help=f"a {role} token")
    args = p.parse_args()
    with grpc.insecure_channel(args.target) as channel:
        grpc.channel_ready_future(channel).result(timeout=TIMEOUT)
        health(channel)
        pool, methods = reflection_v1alpha(channel)
        reflection_v1(channel)
        crm = Crm(channel, {role: getattr(args, role) for role in ROLES})
        access(crm)
        setup(crm)
        lead, second = leads(crm, channel, pool)
        summary = quote_flow(crm, lead, second, args.http_port)
    summary.update(lead_id=lead.id, second_lead_id=second.id, reflected_methods=methods)
    report(summary)


if __name__ == "__main__":
    main()
