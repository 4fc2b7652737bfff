// Package agent works through one record with tools, as the design's agentic bulk run does: the
// model sees a compact overview of the record and a table of its sections, reads what it needs
// (read_section, search_record), looks up the categories' definitions (lookup_category), may call
// tools of MCP servers, and answers through a strict submit tool whose parameters are the run's
// schema. The loop answers every call of a turn, in order, before the next request; it tells the
// model what was wrong with a refused call and goes on, nudges a text answer once, and stops at
// the run's limits of turns and tokens. Requests are made by the caller's TurnFunc, which is where
// rate permits, retries within a turn and accounting live.
package agent
