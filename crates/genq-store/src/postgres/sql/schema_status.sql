-- Migrations applied (sqlx's table), and the server's clock in microseconds (`genq doctor`
-- compares it with this machine's).
SELECT (SELECT count(*) FROM _sqlx_migrations WHERE success) AS applied,
       (extract(epoch FROM clock_timestamp()) * 1000000)::bigint AS now
