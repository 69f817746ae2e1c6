// sqlite-helper runs SQL statements against one SQLite file that the embedded FerretDB has open (WAL), for the
// gateway's start-up tuning and its indexed id queries. One invocation per request: a JSON request on stdin, a
// JSON response on stdout. It uses modernc.org/sqlite at the version FerretDB v1.24.2 itself uses, so both agree
// on the file format and the JSON functions.
//
// Request:  {"database": "/path/db.sqlite", "transaction": false, "statements": [{"sql": "...", "args": [1, "a"]}]}
// Response: {"results": [{"columns": ["a"], "rows": [[1]], "changes": 0}]}
// Failure:  {"error": "...", "statement": 0} on stdout, exit code 1.
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"time"

	_ "modernc.org/sqlite"
)

type statement struct {
	SQL  string `json:"sql"`
	Args []any  `json:"args"`
}

type request struct {
	Database    string      `json:"database"`
	Transaction bool        `json:"transaction"`
	Statements  []statement `json:"statements"`
}

type result struct {
	Columns []string `json:"columns,omitempty"`
	Rows    [][]any  `json:"rows,omitempty"`
	Changes int64    `json:"changes"`
}

type failure struct {
	Error     string `json:"error"`
	Statement int    `json:"statement"`
}

func main() {
	var req request
	dec := json.NewDecoder(os.Stdin)
	dec.UseNumber()
	if err := dec.Decode(&req); err != nil {
		fail(-1, fmt.Errorf("bad request: %w", err))
	}
	results, index, err := run(req)
	if err != nil {
		fail(index, err)
	}
	if err := json.NewEncoder(os.Stdout).Encode(map[string]any{"results": results}); err != nil {
		os.Exit(2)
	}
}

func fail(index int, err error) {
	_ = json.NewEncoder(os.Stdout).Encode(failure{Error: err.Error(), Statement: index})
	os.Exit(1)
}

func run(req request) ([]result, int, error) {
	if req.Database == "" {
		return nil, -1, fmt.Errorf("no database given")
	}
	// mode=rw: never create a file FerretDB does not know. busy_timeout as FerretDB's own: a FerretDB write in
	// progress delays us instead of failing us. The journal mode (WAL) is persistent in the file already.
	dsn := "file:" + (&url.URL{Path: req.Database}).EscapedPath() + "?mode=rw&_pragma=busy_timeout(10000)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, -1, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, -1, err
	}
	defer conn.Close()

	if req.Transaction {
		// IMMEDIATE: take the write lock up front, so a check and the change it decides on see the same rows.
		if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
			return nil, -1, err
		}
	}
	results := make([]result, 0, len(req.Statements))
	for i, st := range req.Statements {
		res, err := execute(ctx, conn, st)
		if err != nil {
			if req.Transaction {
				_, _ = conn.ExecContext(ctx, "ROLLBACK")
			}
			return nil, i, err
		}
		results = append(results, res)
	}
	if req.Transaction {
		if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
			return nil, len(req.Statements), err
		}
	}
	return results, 0, nil
}

func execute(ctx context.Context, conn *sql.Conn, st statement) (result, error) {
	args := make([]any, len(st.Args))
	for i, a := range st.Args {
		args[i] = sqlValue(a)
	}
	rows, err := conn.QueryContext(ctx, st.SQL, args...)
	if err != nil {
		return result{}, err
	}
	defer rows.Close()
	columns, err := rows.Columns()
	if err != nil {
		return result{}, err
	}
	res := result{Columns: columns}
	for rows.Next() {
		values := make([]any, len(columns))
		pointers := make([]any, len(columns))
		for i := range values {
			pointers[i] = &values[i]
		}
		if err := rows.Scan(pointers...); err != nil {
			return result{}, err
		}
		for i, v := range values {
			if b, ok := v.([]byte); ok {
				values[i] = string(b)
			}
		}
		res.Rows = append(res.Rows, values)
	}
	if err := rows.Err(); err != nil {
		return result{}, err
	}
	if err := rows.Close(); err != nil {
		return result{}, err
	}
	// The statement has run to completion: changes() is its count (0 for a query).
	if len(columns) == 0 {
		if err := conn.QueryRowContext(ctx, "SELECT changes()").Scan(&res.Changes); err != nil {
			return result{}, err
		}
	}
	return res, nil
}

// sqlValue binds JSON numbers as integers when they are integral (ids, timestamps in milliseconds), else as reals.
func sqlValue(v any) any {
	if n, ok := v.(json.Number); ok {
		if i, err := n.Int64(); err == nil {
			return i
		}
		if f, err := n.Float64(); err == nil {
			return f
		}
	}
	return v
}
