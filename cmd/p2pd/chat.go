package main

import (
	"context"
	"errors"
)

// chatCmd is replaced by the chat front end (issue: chat between terminals).
var chatCmd = &command{
	name:  "chat",
	args:  "--rendezvous STRING [flags]",
	short: "talk to the other terminals in a rendezvous room",
	run: func(ctx context.Context, e *env, c *command, args []string) error {
		return errors.New("chat is not built yet")
	},
}
