package broker

import (
	"testing"

	"github.com/dozo-vault/dozo/api"
)

// TestSegmentSizeLimits: dozod takes exactly the segment sizes the client's
// check (api.ValidateSegmentSize) takes, so `dozo dataset create` never
// passes a size locally that dozod then refuses, nor refuses one dozod
// would take.
func TestSegmentSizeLimits(t *testing.T) {
	e := newEnv(t)
	const KiB, MiB = 1 << 10, 1 << 20
	sizes := []int64{64 * KiB, MiB - 64*KiB, MiB, MiB + 1, MiB + 64*KiB, 32 * MiB, 96 * MiB, 128 * MiB,
		api.MaxPlainSegmentSize - 64*KiB, api.MaxPlainSegmentSize, api.MaxPlainSegmentSize + 64*KiB, 1 << 30}
	for _, rs := range [][2]int{{4, 2}, {2, 1}, {1, 2}, {3, 0}, {5, 0}, {6, 0}} { // layouts that fit the test targets
		for _, p := range sizes {
			req := api.CreateDatasetRequest{K: rs[0], M: rs[1], PlainSegmentSize: p}
			_, brokerErr := e.srv.datasetLayout(&req)
			apiErr := api.ValidateSegmentSize(p, rs[0])
			if (brokerErr == nil) != (apiErr == nil) {
				t.Errorf("%d+%d, %d bytes: dozod says %v, the client check says %v", rs[0], rs[1], p, brokerErr, apiErr)
			}
		}
	}
	if err := api.ValidateSegmentSize(api.MaxPlainSegmentSize, 4); err != nil {
		t.Errorf("the largest segment size is refused: %v", err)
	}
}
