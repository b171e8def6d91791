// Package config owns pyrunner's configuration: every environment variable
// it reads, its default, how its value is parsed and which values are
// refused, with the texts n8n's runner uses (docs/errors.md §8). Read
// Config first, then Load.
//
// The settings come in sections that each check themselves: Broker (how
// pyrunner meets n8n), Log, Pool (the Python processes and who they run
// as) and Limits (what one task may do). Load checks them all, as
// `pyrunner run` needs; LoadWithoutBroker leaves the broker's out, for
// commands that run tasks without n8n. Either reports every problem at
// once, each naming its variable.
//
// It only reads and checks: what the settings are turned into (the
// interpreter, the task users, the pool) is decided by the commands.
package config
