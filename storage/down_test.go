package storage

import (
	"testing"
	"time"
)

func TestDownTargets(t *testing.T) {
	var nilDown *DownTargets
	nilDown.Mark("a")
	if nilDown.IsDown("a") {
		t.Fatal("a nil DownTargets holds a target down")
	}
	d := &DownTargets{For: time.Hour}
	if d.IsDown("a") {
		t.Fatal("zero value holds a target down")
	}
	d.Mark("a")
	if !d.IsDown("a") || d.IsDown("b") {
		t.Fatal("Mark did not hold exactly its target down")
	}
	if !d.SetDown("b", true) || d.SetDown("b", true) || !d.IsDown("b") {
		t.Fatal("SetDown(true): wrong change report or not down")
	}
	if !d.SetDown("b", false) || d.SetDown("b", false) || d.IsDown("b") {
		t.Fatal("SetDown(false): wrong change report or still down")
	}
	// A standing verdict of up does not lift a recent Mark.
	d.SetDown("a", true)
	d.SetDown("a", false)
	if !d.IsDown("a") {
		t.Fatal("SetDown(false) cleared a Mark")
	}
	expired := &DownTargets{For: -time.Second}
	expired.Mark("a")
	if expired.IsDown("a") {
		t.Fatal("a Mark outlived For")
	}
}
