package client

import (
	"context"
	"net/http"

	"github.com/p2pd/p2pd/api"
)

func (c *defaultClient) Status(ctx context.Context) (*api.Status, error) {
	var out api.Status
	if err := c.do(ctx, 0, http.MethodGet, api.RouteStatus, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func (lb *lbClient) Status(ctx context.Context) (*api.Status, error) {
	return lbCall(ctx, lb, false, func(_ int, c *defaultClient) (*api.Status, error) { return c.Status(ctx) })
}
