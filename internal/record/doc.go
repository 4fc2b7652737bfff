// Package record defines the unit of work, one input record with its position and ID, and the
// dotted-path lookups used to find an ID or a field inside a record's JSON.
package record
