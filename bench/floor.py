"""The HTTP benchmark's floor table: the one row `POST /bench/floor-order/` commits per request
(bench/baseline_urls.py), created in the orders database by bench/http.py. Plain constants, so the
bench's own process imports them without Django."""

FLOOR_TABLE = "bench_floor_order"
FLOOR_DDL = (
    f"CREATE TABLE IF NOT EXISTS {FLOOR_TABLE} (id uuid PRIMARY KEY, customer_id uuid NOT NULL, "
    "body jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
)
