"""Demo data for Northwind Provisions Ltd, a UK wholesale food & kitchen-supplies distributor.

Writes wholesale_invoices.csv (a row per invoice line), wholesale_payments.csv (a row per payment allocation)
and wholesale_credit_notes.csv (a row per credit note line) next to this script. The committed CSVs are its
output, byte-for-byte deterministic: edit this script and re-run ``python sync/demo/generate.py`` instead."""

import csv
import random
import string
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

# Deliberately bad documents so the demo shows exceptions; tests and docs refer to these numbers.
# Broken invoices (each one open, unpaid line; the bad value replaces a sane one): number -> (column, value)
BROKEN_INVOICES = {
    "NP-2026-00021": ("customer_name", ""),  # customer_email is still there
    "NP-2026-00054": ("issue_date", "31/02/2026"),  # due_date is computed from 2026-02-27
    "NP-2026-00087": ("issue_date", "03/04/2026"),  # meant as 3 April 2026; due_date computed from that
    "NP-2026-00142": ("unit_price", "12,34,5"),  # Arborio rice, total computed at 12.34
    "NP-2026-00199": ("quantity", "two"),  # total computed for 2
    "NP-2026-00263": ("currency", "ZZZ"),  # amounts are in GBP
}
# Otherwise valid, open GBP invoices whose stated total differs from the sum of their lines by this much:
MISMATCHED_INVOICES = {"NP-2026-00118": Decimal("0.03"), "NP-2026-00231": Decimal("-0.02")}
# Problem payments (references follow payment date order; the script checks this list):
ON_ACCOUNT, BAD_AMOUNT = "no invoice_number: paid on account", "amount 12.345 GBP: too many decimals"
SPECIAL_PAYMENTS = {"PAY-2026-00080": ON_ACCOUNT, "PAY-2026-00132": ON_ACCOUNT, "PAY-2026-00150": BAD_AMOUNT}

OUT = Path(__file__).resolve().parent
rng = random.Random(20261121)
TODAY = date(2026, 11, 20)  # the data set is a snapshot taken on this day
FIRST_ISSUE, LAST_ISSUE, N_INVOICES, N_CREDIT_NOTES = date(2026, 1, 5), date(2026, 11, 13), 300, 20
MINOR = {"GBP": 2, "EUR": 2, "USD": 2, "JPY": 0, "KWD": 3}
FX = {"GBP": "1", "EUR": "1.17", "USD": "1.27", "JPY": "192", "KWD": "0.39"}  # the price list is in GBP
# Tax rate for standard, reduced and zero-rated (food) products: UK VAT, Irish VAT, New York City sales
# tax (food for resale exempt), Japanese consumption tax (food at the reduced 8%), none in Kuwait.
TAX = {"GBP": "20 5 0", "EUR": "23 13.5 0", "USD": "8.875 8.875 0", "JPY": "10 10 8", "KWD": "0 0 0"}
METHODS = ("bank_transfer", "card", "direct_debit", "cheque")  # JPY and KWD customers pay by bank transfer
METHOD_WEIGHTS = {"GBP": (45, 25, 20, 10), "EUR": (50, 30, 20, 0), "USD": (50, 35, 0, 15)}
CARD_FEES = {"GBP": ("0.015", "0.20"), "EUR": ("0.015", "0.20"), "USD": ("0.029", "0.30")}
UNIT_QTY = (1, 1, 2, 2, 3, 4, 5, 6, 6, 8, 10, 12, 12, 20, 24, 36)
KG_QTY = ("1.5", "2", "2.5", "3", "3.75", "4.5", "5", "7.5")
INVOICE_HEADER = """invoice_number customer_name customer_email issue_date due_date currency description
    quantity unit_price tax_rate total status amount_paid external_id"""
PAYMENT_HEADER = """payment_reference payment_date amount currency customer_name customer_email
    invoice_number allocated_amount method processor_transaction_id fee payout_id external_id"""
CREDIT_NOTE_HEADER = """credit_note_number customer_name customer_email issue_date currency description
    quantity unit_price tax_rate total status invoice_number external_id"""


def table(text):
    return [line.split("|") for line in text.strip().splitlines()]


# name | billing email | currency | payment terms in days
CUSTOMERS = table("""
The Copper Kettle Café|accounts@copperkettlecafe.co.uk|GBP|14
Harbourside Hotel Group Ltd|purchase.ledger@harbourside-hotels.co.uk|GBP|30
Bramble & Thyme Restaurant|accounts@brambleandthyme.co.uk|GBP|14
Ashdown Park Kitchens Ltd|finance@ashdownparkkitchens.co.uk|GBP|30
The Lanes Deli Co|hello@thelanesdeli.co.uk|GBP|14
Meridian Catering Services Ltd|ap@meridiancatering.co.uk|GBP|45
Oakridge Farm Shop|accounts@oakridgefarmshop.co.uk|GBP|30
Saffron Spice House|accounts@saffronspicehouse.co.uk|GBP|14
Castlegate Inn & Rooms|bookkeeping@castlegateinn.co.uk|GBP|30
Bluebell Tea Rooms|accounts@bluebelltearooms.co.uk|GBP|14
Kingsway Grand Hotel|payables@kingswaygrand.co.uk|GBP|45
Pomodoro Trattoria Ltd|accounts@pomodorotrattoria.co.uk|GBP|30
Northgate School Catering Trust|finance@northgatecatering.org.uk|GBP|45
The Riverside Brasserie|accounts@riversidebrasserie.co.uk|GBP|30
Ember & Oak Grill|accounts@emberandoak.co.uk|GBP|14
Whitby Harbour Fish Bar Ltd|accounts@whitbyharbourfishbar.co.uk|GBP|14
Greenleaf Wholefoods|orders@greenleafwholefoods.co.uk|GBP|30
St Aldhelm's College Kitchens|purchasing@staldhelms-kitchens.org.uk|GBP|45
Highland Lodge Hotels Ltd|accounts@highlandlodgehotels.co.uk|GBP|30
Cardiff Bay Bistro|accounts@cardiffbaybistro.co.uk|GBP|14
Morning Glory Bakery|accounts@morningglorybakery.co.uk|GBP|14
The Old Vicarage Guesthouse|stay@oldvicarageguesthouse.co.uk|GBP|14
Lotus Garden Restaurant|accounts@lotusgardenrestaurant.co.uk|GBP|30
Fenwick & Daughters Grocers|accounts@fenwickgrocers.co.uk|GBP|30
Canary Dock Staff Dining Ltd|ap@canarydockdining.co.uk|GBP|45
Marlowe's Fine Foods Ltd|accounts@marlowesfinefoods.co.uk|GBP|30
Penrose Cornish Pasties Ltd|accounts@penrosepasties.co.uk|GBP|14
The Liffey Kitchen|accounts@liffeykitchen.ie|EUR|30
Galway Bay Hotel Ltd|finance@galwaybayhotel.ie|EUR|30
Cork Market Provisions|accounts@corkmarketprovisions.ie|EUR|30
Temple Lane Coffee House|accounts@templelanecoffee.ie|EUR|14
Nore Valley Inn|accounts@norevalleyinn.ie|EUR|30
Atlantic Way Hospitality DAC|ap@atlanticwayhospitality.ie|EUR|45
Hudson Street Provisions LLC|ap@hudsonstprovisions.com|USD|30
Brooklyn Standard Diner|accounts@brooklynstandarddiner.com|USD|30
Madison Lane Bistro|accounts@madisonlanebistro.com|USD|30
Empire Suites Hotel Corp|payables@empiresuites.com|USD|45
Ginza Hinode Shokudo KK|keiri@ginza-hinode.co.jp|JPY|30
Osaka Bayside Hotel Co., Ltd.|keiri@osakabaysidehotel.co.jp|JPY|45
Gulf Pearl Hotels Group W.L.L.|accounts@gulfpearlhotels.com.kw|KWD|45
""")

# description | GBP list price | tax band (s standard, r reduced, z zero-rated food) | "kg" if sold by weight
PRODUCTS = table("""
Extra virgin olive oil 5L tin|38.50|z|
Basmati rice 20kg sack|31.90|z|
Plain flour 16kg sack|14.75|z|
Peeled plum tomatoes 2.5kg tin (case of 6)|19.80|z|
Parmigiano Reggiano 24 months (per kg)|21.40|z|kg
Mature cheddar block (per kg)|9.85|z|kg
Smoked salmon sliced (per kg)|32.60|z|kg
Unsalted butter 250g (case of 40)|78.00|z|
Free-range eggs (tray of 30)|7.45|z|
Arborio risotto rice 5kg|12.34|z|
Durum wheat penne 5kg bag|9.60|z|
Espresso coffee beans 1kg|16.90|z|
English breakfast tea bags (box of 1100)|24.50|z|
Dark chocolate callets 70% 2.5kg|29.95|z|
Nitrile gloves L (box of 100)|6.95|s|
Stainless gastronorm pan 1/1 65mm|14.20|s|
Blue centrefeed roll (pack of 6)|16.50|s|
Sparkling mineral water 330ml (case of 24)|9.80|s|
Cling film catering roll 450mm x 300m|11.40|s|
Compostable takeaway boxes (pack of 200)|27.50|s|
Chef's knife 21cm|34.00|s|
Commercial dishwasher detergent 20L|42.75|s|
Sea salt crisps 40g (case of 36)|17.60|s|
Propane gas cylinder 19kg (refill)|41.00|r|
""")
ARBORIO = [p for p in PRODUCTS if p[0].startswith("Arborio")]  # priced 12.34, shown as "12,34,5" once


def q(amount, cur):
    return Decimal(amount).quantize(Decimal(1).scaleb(-MINOR[cur]), ROUND_HALF_UP)


def list_price(gbp, cur):
    amount = Decimal(gbp) * Decimal(FX[cur])
    return q(amount / 10, "JPY") * 10 if cur == "JPY" else q(amount, cur)  # yen prices end in 0


def doc_total(lines, cur):
    return q(sum(q(qty * unit, cur) + q(qty * unit * rate / 100, cur) for _, qty, unit, rate in lines), cur)


def stripe_id(prefix):
    return prefix + "".join(rng.choices(string.ascii_letters + string.digits, k=24))


def write(name, header, rows):
    with open(OUT / name, "w", encoding="utf-8", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows([header.split(), *rows])
    print(f"{name}: {len(rows)} rows")


# Invoices: sorted weekday issue dates, numbered in that order; past-due ones are mostly paid.
span = range((LAST_ISSUE - FIRST_ISSUE).days + 1)
weekdays = [d for d in (FIRST_ISSUE + timedelta(n) for n in span) if d.weekday() < 5]
issue_dates = sorted([FIRST_ISSUE, LAST_ISSUE, *rng.choices(weekdays, k=N_INVOICES - 2)])
weights, gbp_customers = [rng.uniform(1, 3) for _ in CUSTOMERS], [c for c in CUSTOMERS if c[2] == "GBP"]
invoices, invoice_rows, erp_id = [], [], 104200
for i, issued in enumerate(issue_dates, 1):
    number = f"NP-2026-{i:05d}"
    bad_column, bad_value = BROKEN_INVOICES.get(number, (None, None))
    special = bad_column is not None or number in MISMATCHED_INVOICES
    name, email, cur, terms = rng.choice(gbp_customers) if special else rng.choices(CUSTOMERS, weights)[0]
    n_lines = 1 if bad_column else 3 if special else rng.choices(range(1, 7), (15, 25, 25, 18, 10, 7))[0]
    picked = ARBORIO if bad_column == "unit_price" else rng.sample(PRODUCTS, n_lines)
    lines = []
    for desc, gbp, band, per_kg in picked:
        qty = rng.choice(KG_QTY) if per_kg else 2 if bad_column == "quantity" else rng.choice(UNIT_QTY)
        lines.append((desc, Decimal(qty), list_price(gbp, cur), Decimal(TAX[cur].split()["srz".index(band)])))
    due, total, status, paid = issued + timedelta(int(terms)), doc_total(lines, cur), "open", Decimal(0)
    if special:
        pass
    elif i > N_INVOICES - 15 and rng.random() < 0.4:
        status = "draft"
    elif rng.random() < 0.015:
        status = "void"
    elif rng.random() < (0.55 if due < TODAY - timedelta(10) else 0.2):
        status, paid = "paid", total
    elif rng.random() < 0.15:  # part-paid, still open
        paid = q(total * Decimal(rng.choice(("0.25", "0.4", "0.5", "0.6"))), cur)
    erp_id += rng.randint(1, 40)
    invoices.append(dict(number=number, customer=(name, email, cur, terms), issued=issued, due=due, cur=cur))
    invoices[-1].update(status=status, paid=paid, lines=lines, special=special)
    amount_paid = "" if status in ("draft", "void") else str(q(paid, cur))
    stated = str(total + MISMATCHED_INVOICES.get(number, 0))
    for desc, qty, unit, rate in lines:
        row = [number, name, email, issued.isoformat(), due.isoformat(), cur, desc, str(qty), str(unit)]
        row += [str(rate), stated, status, amount_paid, f"ERP-INV-{erp_id:06d}"]
        if bad_column:
            row[INVOICE_HEADER.split().index(bad_column)] = bad_value
        invoice_rows.append(row)
write("wholesale_invoices.csv", INVOICE_HEADER, invoice_rows)

# Payments: one per paid or part-paid invoice, a few settling two invoices of the same customer at once.
groups, last_group, merged = [], {}, 0
for inv in (inv for inv in invoices if inv["paid"]):
    prev = last_group.get(inv["customer"][1])
    pairable = prev and len(prev) == 1 and prev[0]["status"] == inv["status"] == "paid" and merged < 5
    if pairable and (inv["issued"] - prev[0]["issued"]).days <= 21 and rng.random() < 0.3:
        prev.append(inv)
        merged += 1
    else:
        groups.append([inv])
        last_group[inv["customer"][1]] = groups[-1]
payments = []
for group in groups:
    start = max(inv["issued"] for inv in group) + timedelta(1)
    days = max((min(min(inv["due"] for inv in group) + timedelta(20), TODAY) - start).days, 0)
    paid_on = start + timedelta(round(rng.triangular(0, days, days * 0.75)))
    paid_on -= timedelta(max(0, paid_on.weekday() - 4))  # weekend -> the Friday before
    allocations = [(inv["number"], str(inv["paid"])) for inv in group]
    payments.append((paid_on, group[0]["customer"], str(sum(inv["paid"] for inv in group)), allocations, ""))
# Paid on account by Meridian Catering (GBP) and Galway Bay Hotel (EUR), matching no invoice:
for paid_on, customer, amount in ((date(2026, 7, 14), 5, "412.50"), (date(2026, 10, 15), 28, "180.00")):
    payments.append((paid_on, CUSTOMERS[customer], amount, [("", "")], ON_ACCOUNT))
unpaid = [inv for inv in invoices if inv["status"] == "open" and not inv["paid"] and not inv["special"]]
target = [inv for inv in unpaid if inv["cur"] == "GBP" and inv["issued"] < TODAY - timedelta(14)][-1]
bad = (target["issued"] + timedelta(7), target["customer"], "12.345", [(target["number"], "12.345")])
payments.append((*bad, BAD_AMOUNT))
payments.sort(key=lambda pay: (pay[0], pay[3][0][0]))
payment_rows, payouts, bank_ids = [], {}, rng.sample(range(10**7, 10**8), len(payments))
for n, (paid_on, (name, email, cur, _), amount, allocations, note) in enumerate(payments, 1):
    ref, charge, fee, payout = f"PAY-2026-{n:05d}", "", "", ""
    method = "bank_transfer" if note else rng.choices(METHODS, METHOD_WEIGHTS.get(cur, (1, 0, 0, 0)))[0]
    if method == "card":  # weekly payouts: each Wednesday for the week before, one per currency
        pct, fixed = CARD_FEES[cur]
        charge, fee = stripe_id("ch_"), str(q(Decimal(amount) * Decimal(pct) + Decimal(fixed), cur))
        day = paid_on + timedelta(9 - paid_on.weekday())
        payout = payouts[cur, day] = payouts.get((cur, day)) or stripe_id("po_")
    for invoice_number, allocated in allocations:
        payment_rows.append([ref, paid_on.isoformat(), amount, cur, name, email, invoice_number, allocated])
        payment_rows[-1] += [method, charge, fee, payout, f"BANK-{bank_ids[n - 1]}"]
write("wholesale_payments.csv", PAYMENT_HEADER, payment_rows)

# Credit notes: damaged goods, short deliveries and price corrections against open or paid invoices.
eligible = [inv for inv in invoices if inv["status"] in ("open", "paid") and not inv["special"]]
notes = []
for inv in rng.sample([inv for inv in eligible if inv["issued"] < TODAY - timedelta(7)], N_CREDIT_NOTES):
    cur, reason = inv["cur"], rng.choice(("Damaged on delivery", "Short delivery", "Price correction"))
    lines = []
    for desc, qty, unit, rate in rng.sample(inv["lines"], min(len(inv["lines"]), rng.choice((1, 1, 1, 2)))):
        if reason == "Price correction":
            unit = q(unit * Decimal(rng.choice(("0.05", "0.1", "0.15"))), cur)  # the overcharge per unit
        elif qty == qty.to_integral_value() and qty > 1:
            qty = Decimal(rng.randint(1, max(1, int(qty) // 3)))
        lines.append((f"{reason}: {desc}", qty, unit, rate))
    issued = min(inv["issued"] + timedelta(rng.randint(2, 21)), TODAY)
    issued -= timedelta(max(0, issued.weekday() - 4))  # weekend -> the Friday before
    notes.append((issued, inv, lines, rng.choices(("open", "applied"), (2, 3))[0]))
note_rows, erp_id = [], 730400
for n, (issued, inv, lines, status) in enumerate(sorted(notes, key=lambda note: note[0]), 1):
    erp_id += rng.randint(1, 60)
    name, email, cur, _ = inv["customer"]
    total = str(doc_total(lines, cur))
    for desc, qty, unit, rate in lines:
        note_rows.append([f"NP-CN-2026-{n:04d}", name, email, issued.isoformat(), cur, desc, str(qty)])
        note_rows[-1] += [str(unit), str(rate), total, status, inv["number"], f"ERP-CN-{erp_id:06d}"]
write("wholesale_credit_notes.csv", CREDIT_NOTE_HEADER, note_rows)

print("Broken invoices:", ", ".join(f"{k} ({col} {val!r})" for k, (col, val) in BROKEN_INVOICES.items()))
print("Stated total off its lines:", ", ".join(f"{k} ({d:+})" for k, d in MISMATCHED_INVOICES.items()))
found = {f"PAY-2026-{n:05d}": pay[4] for n, pay in enumerate(payments, 1) if pay[4]}
print("Problem payments:", ", ".join(f"{k} ({v})" for k, v in found.items()))
assert found == SPECIAL_PAYMENTS, f"update SPECIAL_PAYMENTS to {found}"
